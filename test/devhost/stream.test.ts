// HTTP streaming (app.setup({ enableHttpStream: true })): requests are forwarded to the library's own
// server and responses piped back as they are written — a chunk arrives before the handler finishes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHost, stopAllHosts, type HostHandle } from '../support/host';

let host: HostHandle;

beforeAll(async () => {
  host = await startHost({ appRoot: 'test/fixtures/devhost-stream-app' });
});

afterAll(stopAllHosts);

describe('HTTP streaming', () => {
  it('delivers the first chunk while the handler is still running', async () => {
    const response = await fetch(`${host.url}/api/stream/s1`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-stream-id')).toBe('s1');
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('first:s1\n');
    // The handler is blocked until we release it, so this chunk cannot have been buffered with the rest.
    expect((await fetch(`${host.url}/api/release/s1`, { method: 'POST' })).status).toBe(204);
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe('second\n');
  });

  it('streams request bodies in and passes params, query, headers and cookies', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 7);
    const response = await fetch(`${host.url}/api/upload/f1?q=yes`, { method: 'POST', body, headers: { 'x-test': 'h' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ name: 'f1', bytes: body.length, query: 'yes', header: 'h' });
    expect(response.headers.getSetCookie()).toEqual(['c=v']);
  });

  it('answers 204 for no response and 500 JSON for a failing handler', async () => {
    expect((await fetch(`${host.url}/api/nothing`)).status).toBe(204);
    const failed = await fetch(`${host.url}/api/boom`);
    expect(failed.status).toBe(500);
    expect(await failed.json()).toMatchObject({ error: { code: 'internal_error' } });
    await host.waitForLog(/stream kaboom/);
  });

  it('still routes: the host answers 404 for no route and for a wrong method', async () => {
    expect((await fetch(`${host.url}/api/missing`)).status).toBe(404);
    expect((await fetch(`${host.url}/api/stream/x`, { method: 'POST' })).status).toBe(404);
  });
});
