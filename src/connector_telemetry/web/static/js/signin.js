// Sign-in: an API token (Magic WAN Read or Write), or an email and Global API Key.

import { $, h, put } from "./dom.js";

export function renderSignIn(main, prefix, submit) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const tokenFields = h("div", { class: "fields", dataset: { kind: "token" } },
    h("label", { for: "token" }, "API token"),
    h("input", {
      id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false",
      required: true, "aria-describedby": "token-help",
    }),
    h("p", { id: "token-help", class: "help" },
      "A Magic WAN Read or Write token, as printed by ", h("code", {}, "ctel tokens create"), "."),
  );
  const keyFields = h("div", { class: "fields", dataset: { kind: "key" }, hidden: true },
    h("label", { for: "email" }, "Email"),
    h("input", { id: "email", name: "email", type: "email", autocomplete: "username" }),
    h("label", { for: "key" }, "Global API Key"),
    h("input", { id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false" }),
  );
  const kind = (value) => {
    const token = value === "token";
    tokenFields.hidden = !token;
    keyFields.hidden = token;
    $("#token", tokenFields).required = token;
    $("#email", keyFields).required = !token;
    $("#key", keyFields).required = !token;
  };
  const choice = h("fieldset", { class: "choice" },
    h("legend", {}, "Sign in with"),
    h("label", {}, h("input", { type: "radio", name: "kind", value: "token", checked: true,
      onchange: () => kind("token") }), " API token"),
    h("label", {}, h("input", { type: "radio", name: "kind", value: "key",
      onchange: () => kind("key") }), " Email + Global API Key"),
  );
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin", "aria-labelledby": "signin-title", novalidate: false },
    h("h1", { id: "signin-title" }, "Magic WAN Connector fleet"),
    h("p", { class: "lead" },
      "Sign in with a credential of this server's API (", h("code", {}, `${prefix}`), "). ",
      "It stays in this browser tab only, and is forgotten when you sign out or close the tab."),
    choice, tokenFields, keyFields, error, button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const credential = data.get("kind") === "key"
      ? { kind: "key", email: String(data.get("email")).trim(), key: String(data.get("key")).trim() }
      : { kind: "token", token: String(data.get("token")).trim() };
    button.disabled = true;
    error.hidden = true;
    try {
      await submit(credential);
    } catch (err) {
      put(error, `Sign-in failed: ${err.describe ? err.describe() : err.message}`);
      error.hidden = false;
      button.disabled = false;
    }
  });
  document.title = "Sign in · ctel";
  put(main, form);
  $("#token", form).focus();
  return { stop() {} };
}
