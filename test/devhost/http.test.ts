// HTTP conformance of the local host, over real HTTP against the fixture app (test/fixtures/devhost-app):
// routing (params, optional/default, constraints, catch-all, function-name order, prefix), methods (an empty 404 for no match),
// request conversion (query, headers, binary body) and response conversion (status, headers, cookies).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteHandle } from '../support/azurite';
import { startHost, stopAllHosts, type HostHandle } from '../support/host';

let azurite: AzuriteHandle;
let host: HostHandle;

beforeAll(async () => {
  azurite = await startAzurite();
  host = await startHost({
    appRoot: 'test/fixtures/devhost-app',
    env: { AzureWebJobsStorage: azurite.connectionString, FIXTURE_OVERRIDDEN: 'from-environment' },
  });
});

afterAll(async () => {
  await stopAllHosts();
  await azurite?.stop();
});

async function getJson(path: string, init?: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(`${host.url}${path}`, init);
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: response.headers };
}

describe('routing', () => {
  it('matches route parameters and applies the host.json route prefix', async () => {
    expect(await getJson('/fx/items/42')).toMatchObject({ status: 200, body: { route: 'items-int', id: '42' } });
    expect((await getJson('/api/items/42')).status).toBe(404); // the fixture's prefix is "fx", not the default
  });

  it('takes the first matching route in function-name order, as the Functions host does (itemsAlpha shadows itemsNew)', async () => {
    expect((await getJson('/fx/items/new')).body).toEqual({ route: 'items-alpha', name: 'new' });
    expect((await getJson('/fx/items/abc')).body).toEqual({ route: 'items-alpha', name: 'abc' });
    expect((await getJson('/fx/items/7')).body).toEqual({ route: 'items-int', id: '7' });
  });

  it('rejects values that fail a constraint with 404', async () => {
    expect((await getJson('/fx/items/12ab')).status).toBe(404); // neither int nor alpha
    expect((await getJson('/fx/items/99999999999')).status).toBe(404); // beyond int32
    expect((await getJson('/fx/range/11')).status).toBe(404);
    expect((await getJson('/fx/range/10')).body).toEqual({ route: 'range', n: '10' });
    expect((await getJson('/fx/re/ab12')).body).toEqual({ route: 're', code: 'ab12' });
    expect((await getJson('/fx/re/ab123')).status).toBe(404);
    expect((await getJson('/fx/guid/not-a-guid')).status).toBe(404);
    expect((await getJson('/fx/guid/3f2504e0-4f89-11d3-9a0c-0305e82c3301')).status).toBe(200);
  });

  it('handles optional parameters, defaults, complex segments and catch-all', async () => {
    expect((await getJson('/fx/opt')).body).toEqual({ route: 'opt', x: null });
    expect((await getJson('/fx/opt/')).body).toEqual({ route: 'opt', x: null });
    expect((await getJson('/fx/opt/5')).body).toEqual({ route: 'opt', x: '5' });
    expect((await getJson('/fx/opt/5/6')).status).toBe(404);
    expect((await getJson('/fx/lang')).body).toEqual({ route: 'lang', code: 'en' });
    expect((await getJson('/fx/lang/fr')).body).toEqual({ route: 'lang', code: 'fr' });
    expect((await getJson('/fx/docs/readme')).body).toEqual({ route: 'docs', name: 'readme', ext: null });
    expect((await getJson('/fx/docs/a.b.txt')).body).toEqual({ route: 'docs', name: 'a.b', ext: 'txt' });
    expect((await getJson('/fx/files/a/b/c.txt')).body).toEqual({ route: 'files', path: 'a/b/c.txt' });
    expect((await getJson('/fx/files')).body).toEqual({ route: 'files', path: null });
  });

  it('decodes percent-encoded segments and matches literals case-insensitively', async () => {
    expect((await getJson('/fx/opt/hello%20world')).body).toEqual({ route: 'opt', x: 'hello world' });
    expect((await getJson('/FX/Items/Abc')).body).toEqual({ route: 'items-alpha', name: 'Abc' });
    expect((await getJson('/fx/opt/%E0%A4%A')).status).toBe(400);
  });

  it('uses the function name when a route is not given', async () => {
    expect((await getJson('/fx/defaultRoute')).body).toEqual({ route: 'default' });
  });

  it('answers unknown paths and wrong methods with an empty 404, as the Functions host does', async () => {
    for (const [path, method] of [['/fx/nope', 'GET'], ['/fx/echo', 'DELETE'], ['/fx/items/1', 'POST']] as const) {
      const response = await fetch(`${host.url}${path}`, { method });
      expect({ path, method, status: response.status, body: await response.text() }).toEqual({ path, method, status: 404, body: '' });
    }
  });

  it('accepts every method when the trigger lists none', async () => {
    for (const method of ['GET', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
      expect((await getJson('/fx/any', { method })).body).toEqual({ method });
    }
  });
});

describe('requests and responses', () => {
  it('passes query, headers, method, URL and a binary body through unchanged', async () => {
    const body = Buffer.concat([randomBytes(64 * 1024), Buffer.from([0, 0xff, 0xfe, 0x80])]);
    const response = await fetch(`${host.url}/fx/echo/t1?a=1&a=2&b=x%20y`, { method: 'PUT', body, headers: { 'x-test': 'yes', 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true);
    expect(response.headers.get('x-echo-method')).toBe('PUT');
    expect(JSON.parse(response.headers.get('x-echo-query') ?? '')).toEqual({ a: '1,2', b: 'x y' }); // repeated keys joined, like the host
    expect(response.headers.get('x-echo-header')).toBe('yes');
    expect(response.headers.get('x-echo-tag')).toBe('t1');
    expect(response.headers.get('x-echo-url')).toBe(`${host.url}/fx/echo/t1?a=1&a=2&b=x%20y`);
  });

  it('sends status, headers and cookies the handler set', async () => {
    const response = await fetch(`${host.url}/fx/status/201`);
    expect(response.status).toBe(201);
    expect(await response.text()).toBe('status body');
    expect(response.headers.get('x-custom')).toBe('yes');
    const cookies = response.headers.getSetCookie();
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toBe('session=abc%20123; path=/; httponly');
    expect(cookies[1]).toMatch(/^theme=dark; max-age=60; secure; samesite=strict$/);
    expect((await fetch(`${host.url}/fx/status/418`)).status).toBe(418);
  });

  it('answers 204 when the handler returns nothing', async () => {
    const response = await fetch(`${host.url}/fx/nothing`);
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
  });

  it('logs a handler error and answers 500 JSON without its details', async () => {
    const response = await getJson('/fx/boom');
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({ error: { code: 'internal_error' } });
    expect(JSON.stringify(response.body)).not.toContain('kaboom');
    await host.waitForLog(/kaboom: secret internal detail/);
  });

  it('stops waiting for a handler after functionTimeout and answers 500', async () => {
    const started = Date.now();
    const response = await getJson('/fx/slow-http');
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({ error: { code: 'function_timeout' } });
    expect(Date.now() - started).toBeLessThan(9_000); // host.json says 3 s; the handler takes 10 s
  });
});

describe('app settings and hooks', () => {
  it('loads local.settings.json Values without overriding the environment', async () => {
    expect((await getJson('/fx/env/FIXTURE_FROM_SETTINGS')).body).toEqual({ value: 'from-local-settings' });
    expect((await getJson('/fx/env/FIXTURE_OVERRIDDEN')).body).toEqual({ value: 'from-environment' });
  });

  it('runs appStart once and the invocation hooks around every call', async () => {
    const first = await getJson('/fx/hooks');
    const second = await getJson('/fx/hooks');
    expect(first.body).toMatchObject({ appStartCalls: 1 });
    const calls = (body: unknown) => (body as { preInvocationCalls: number }).preInvocationCalls;
    expect(calls(second.body)).toBe(calls(first.body) + 1);
    expect(second.headers.get('x-post-invocation')).toBe('hooks'); // set by postInvocation from preInvocation's hookData
  });

  it('lists its functions and serves host status', async () => {
    expect(host.logs()).toMatch(/itemsInt: \[GET\] http:\/\/localhost:\d+\/fx\/items\/\{id:int\}/);
    expect(host.logs()).toMatch(/anyMethod: \[ALL\]/);
    expect(host.logs()).toMatch(/ledger: entityTrigger/);
    expect((await getJson('/admin/host/status')).body).toMatchObject({ state: 'Running' });
  });
});
