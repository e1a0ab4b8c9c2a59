/**
 * Function keys: every route is authLevel "function". Where the runtime enforces keys (the Functions
 * host, as Azure does), a call without a key or with a wrong one is refused with 401 before the app
 * runs, and the right key (?code= or x-functions-key) is let through. Where it does not (the local
 * host, like `func start`), the same calls are served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  expect((await fetch(t.url('/api/chats/keyed'), { method: 'PUT', body: '{}' })).status).toBe(201);
});
afterAll(() => t?.stop());

const routes: [string, string, string?][] = [
  ['POST', '/api/ask', '{"prompt":"hi"}'],
  ['GET', '/api/whois/Ada'],
  ['PUT', '/api/chats/keyed', '{}'],
  ['POST', '/api/chats/keyed?wait=0', '{"message":"hi"}'],
  ['GET', '/api/chats/keyed'],
  ['GET', '/api/ui'],
  ['DELETE', '/api/chats/not-there'],
];

describe('function keys', () => {
  it.each(routes)('%s %s: refused without a key or with a wrong one where keys are enforced, served with the key', async (method, path, body) => {
    const bare = `${t.host.url}${path}`;
    const withoutKey = await fetch(bare, { method, body });
    const wrongKey = await fetch(bare, { method, body, headers: { 'x-functions-key': 'not-the-key' } });
    const viaQuery = await fetch(t.url(path), { method, body });
    const viaHeader = await fetch(bare, { method, body, headers: t.keyHeaders() });
    const served = (status: number) => status !== 401 && status < 500;
    if (t.runtime.functionKey !== undefined) {
      expect([withoutKey.status, wrongKey.status]).toEqual([401, 401]);
      expect(await withoutKey.text()).toBe(''); // refused by the host: no app code ran
    } else {
      expect(served(withoutKey.status) && served(wrongKey.status)).toBe(true);
    }
    expect([served(viaQuery.status), served(viaHeader.status)]).toEqual([true, true]);
  });
});
