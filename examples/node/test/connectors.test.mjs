// Code under test written with Cloudflare's Node SDK, tested against ctel serve --test-mode
// with only its HTTP test API: `npm test` (CTEL_URL=http://127.0.0.1:8787 to use a running one).
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';

import Cloudflare from 'cloudflare';

import { Ctel } from '../ctel.mjs';

let ctel;
let account;
let cf;

before(async () => {
  ctel = await Ctel.start();
  account = await ctel.account('node example'); // account_id, token, read_token, email, api_key
  cf = new Cloudflare({ apiToken: account.token, baseURL: ctel.baseURL });
});

after(async () => { await ctel.stop?.(); });

beforeEach(async () => { await ctel.reset(); }); // each test starts with no connectors

async function connectorIds() {
  const ids = [];
  for await (const c of cf.magicTransit.connectors.list({ account_id: account.account_id })) {
    ids.push(c.id);
  }
  return ids;
}

test('a connector created through the SDK is listed, and gone after a reset', async () => {
  const created = await cf.magicTransit.connectors.create({
    account_id: account.account_id, device: { serial_number: 'NODE-1' }, activated: true,
  });
  assert.deepEqual(await connectorIds(), [created.id]);
  const { removed } = await ctel.reset();
  assert.equal(removed.connectors, 1);
  assert.deepEqual(await connectorIds(), []);
});

test('a 429 is retried by the SDK, and the journal shows it', async () => {
  await ctel.addFault({ route: 'connectors.list', status: 429, count: 1 });
  assert.deepEqual(await connectorIds(), []);
  const seen = await ctel.requests({ route: 'connectors.list' });
  assert.deepEqual(seen.map((r) => r.status), [429, 200]);
  assert.equal(seen[0].credential.kind, 'token'); // never the secret itself
});

test("Cloudflare's rate limit, with small numbers", async () => {
  await ctel.rateLimit(2, 60);
  const noRetries = new Cloudflare({
    apiToken: account.token, baseURL: ctel.baseURL, maxRetries: 0,
  });
  const list = () => noRetries.magicTransit.connectors.list({ account_id: account.account_id });
  await list();
  await list();
  await assert.rejects(list(), (error) => {
    assert.equal(error.status, 429);
    assert.equal(error.errors[0].code, 971);
    return true;
  });
});

test('a reboot is requested, at the time the server is told it is', async () => {
  await ctel.setTime(1_700_000_000);
  const { id } = await cf.magicTransit.connectors.create({
    account_id: account.account_id, device: { serial_number: 'NODE-2' }, activated: true,
  });
  const interrupt = await cf.magicTransit.connectors.interrupts.create(id, {
    account_id: account.account_id, reboot: {},
  });
  assert.ok(interrupt.submitted_at.startsWith('2023-11-14T22:13'), interrupt.submitted_at);
  assert.equal((await ctel.requests({ route: 'interrupts.create', status: 200 })).length, 1);
});

test('a bad fault rule is refused, naming the field', async () => {
  await assert.rejects(ctel.addFault({ route: 'no.such.route', status: 503 }), /route/);
});
