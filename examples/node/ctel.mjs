// A few lines over ctel's HTTP test API (README, "Test mode API"): all a test suite in any
// language needs. CTEL_URL names a running `ctel serve --test-mode`; without it, `start()`
// runs one (`ctel` from $CTEL_BIN or PATH) on a free port with a throwaway database.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class Ctel {
  constructor(url) {
    this.url = url; // the service root; the API is at url + '/client/v4'
    this.baseURL = url + '/client/v4';
  }

  // One test-API call: the envelope's result, or an Error with the server's message.
  async call(method, path, body) {
    const response = await fetch(this.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const envelope = await response.json();
    if (!envelope.success) {
      throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(envelope.errors)}`);
    }
    return envelope.result;
  }

  account(name) { return this.call('POST', '/_ctel/accounts', name ? { name } : {}); }
  reset() { return this.call('POST', '/_ctel/reset'); }
  addFault(rule) { return this.call('POST', '/_ctel/faults', rule); }
  faults() { return this.call('GET', '/_ctel/faults'); }
  clearFaults() { return this.call('DELETE', '/_ctel/faults'); }
  rateLimit(requests, period_seconds) {
    return this.call('PUT', '/_ctel/rate-limit', { requests, period_seconds });
  }
  requests(filters = {}) {
    const query = new URLSearchParams(filters).toString();
    return this.call('GET', '/_ctel/requests' + (query ? '?' + query : ''));
  }
  setTime(now) { return this.call('PUT', '/_ctel/clock', { now }); }
  advance(seconds) { return this.call('PUT', '/_ctel/clock', { advance: seconds }); }
  realTime() { return this.call('DELETE', '/_ctel/clock'); }

  static async start() {
    if (process.env.CTEL_URL) return new Ctel(process.env.CTEL_URL.replace(/\/+$/, ''));
    const folder = mkdtempSync(join(tmpdir(), 'ctel-node-'));
    const port = await freePort();
    const server = spawn(
      process.env.CTEL_BIN || 'ctel',
      ['serve', '--test-mode', '--db', join(folder, 'ctel.db'), '--port', String(port),
        '--workers', '1'],
      { stdio: ['ignore', 'ignore', 'inherit'], detached: true },
    );
    const ctel = new Ctel(`http://127.0.0.1:${port}`);
    ctel.stop = async () => {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      if (server.exitCode === null) process.kill(-server.pid, 'SIGTERM');
      await exited;
      rmSync(folder, { recursive: true, force: true });
    };
    const failed = new Promise((_, reject) => server.once('exit', (code) =>
      reject(new Error(`ctel serve --test-mode exited with ${code}`))));
    for (let i = 0; i < 3000; i += 1) {
      try {
        if ((await Promise.race([fetch(ctel.url + '/healthz'), failed])).ok) return ctel;
      } catch (error) {
        if (server.exitCode !== null) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    await ctel.stop();
    throw new Error('ctel serve --test-mode did not start in 30 s');
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}
