// The dashboard: sign-in, then the fleet page (#/) and a page per connector
// (#/connectors/<id>). A client of the public API served beside it, nothing more.

import { Api } from "./api.js";
import { $, h, put } from "./dom.js";
import * as session from "./session.js";
import { renderSignIn } from "./signin.js";
import { renderFleet } from "./fleet.js";
import { renderConnector } from "./connector.js";

const prefix = document.querySelector('meta[name="ctel-api"]').content;
const main = $("#main");
const nav = $(".session");
const notice = $(".notice");
let page = null; // the page on screen: { stop() }
let ctx = null; // { api, account, accounts, clock, live(text) }

function say(text) {
  if (text) {
    put(notice, text);
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
}

function stopPage() {
  if (page && page.stop) page.stop();
  page = null;
}

export function signOut(message) {
  stopPage();
  session.forget();
  ctx = null;
  nav.hidden = true;
  say(message || "");
  if (location.hash && location.hash !== "#/") history.replaceState(null, "", "#/");
  showSignIn();
}

function showSignIn() {
  document.title = "Sign in · ctel";
  stopPage();
  page = renderSignIn(main, prefix, async (credential) => {
    const api = new Api(prefix, credential);
    const accounts = await api.accounts(); // throws ApiError with the API's message
    if (!accounts.length) throw new Error("This credential has access to no account.");
    session.save({ credential, accountId: accounts[0].id });
    say("");
    await start();
  });
}

function showAccount() {
  const account = ctx.account;
  const write = account.permissions && account.permissions.magic_wan && account.permissions.magic_wan.write;
  ctx.canWrite = Boolean(write);
  put($(".account-name", nav), account.name);
  $(".account-name", nav).title = `Account ${account.id}`;
  put($(".permission", nav), write ? "Read & write" : "Read only");
  $(".permission", nav).dataset.permission = write ? "write" : "read";
  const picker = $(".account-pick", nav);
  picker.hidden = ctx.accounts.length < 2;
  const select = $("select", picker);
  put(select, ctx.accounts.map((a) => h("option", { value: a.id, selected: a.id === account.id }, a.name)));
  nav.hidden = false;
}

async function start() {
  const stored = session.load();
  if (!stored) return showSignIn();
  const api = new Api(prefix, stored.credential, (err) => {
    signOut(`Signed out: the API refused the credential (${err.describe()}).`);
  });
  // The fleet summary is asked for at once, beside the accounts (the account signed in
  // last is the likely one): the fleet page picks it up if it is for its account.
  const prefetch = (location.hash || "#/").startsWith("#/connectors/") ? null
    : { accountId: stored.accountId, result: api.fleet(stored.accountId) };
  if (prefetch) prefetch.result.catch(() => {});
  let accounts;
  try {
    accounts = await api.accounts();
  } catch (err) {
    if (!session.load()) return; // signed out by the refusal handler
    say(`The API cannot be reached: ${err.message}. Retrying…`);
    setTimeout(start, 3000);
    return;
  }
  const account = accounts.find((a) => a.id === stored.accountId) || accounts[0];
  if (!account) return signOut("This credential has access to no account.");
  ctx = { api, accounts, account, clockOffset: 0, prefetch };
  ctx.now = () => Date.now() / 1000 + ctx.clockOffset;
  ctx.live = (text) => put($(".live", nav), text);
  showAccount();
  route();
}

function route() {
  if (!ctx) return;
  stopPage();
  say("");
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const match = /^\/connectors\/(.+)$/.exec(path);
  window.scrollTo(0, 0);
  if (match) {
    page = renderConnector(main, ctx, decodeURIComponent(match[1]), params);
  } else {
    page = renderFleet(main, ctx, params);
  }
}

$(".sign-out").addEventListener("click", () => signOut("Signed out."));
$(".account-pick select").addEventListener("change", (event) => {
  const stored = session.load();
  stored.accountId = event.target.value;
  session.save(stored);
  ctx.account = ctx.accounts.find((a) => a.id === stored.accountId);
  showAccount();
  if (location.hash.startsWith("#/connectors/")) location.hash = "#/";
  else route();
});
window.addEventListener("hashchange", () => {
  if (ctx) route();
});
start();
