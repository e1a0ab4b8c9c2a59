// Durable entities through the local host and the durable-functions SDK, against the fixture app:
// the durable client (signal/read/delete/list), per-entity order, cross-entity parallelism, large
// state, entity-to-entity signals, failing and timed-out operations, and storage requests per operation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteHandle } from '../support/azurite';
import { startHost, stopAllHosts, type HostHandle } from '../support/host';
import { durableApi, eventually, expectedBlob, type LedgerState } from './durableHelpers';

let azurite: AzuriteHandle;
let host: HostHandle;
let api: ReturnType<typeof durableApi>;

const hostOptions = () => ({ appRoot: 'test/fixtures/devhost-app', env: { AzureWebJobsStorage: azurite.connectionString }, args: ['--quiet'] });

beforeAll(async () => {
  azurite = await startAzurite();
  host = await startHost(hostOptions());
  api = durableApi(host.url);
});

afterAll(async () => {
  await stopAllHosts();
  await azurite?.stop();
});

const stateWith = (key: string, done: (state: LedgerState) => boolean, timeoutMs?: number) =>
  eventually(
    `ledger@${key}`,
    async () => {
      const state = await api.read(key);
      return state !== undefined && done(state) ? state : undefined;
    },
    timeoutMs,
  );

describe('durable client', () => {
  it('signals (202) and reads state the way the SDK parses it', async () => {
    expect(await api.signalViaClient('client-1', 'append', { n: 1 })).toBe(202);
    await stateWith('client-1', (state) => state.items.length === 1);
    expect(await api.readViaClient('client-1')).toEqual({ entityExists: true, entityState: { items: [{ n: 1 }], spans: [] } });
    expect(await api.readViaClient('never-signalled')).toEqual({ entityExists: false });
  });

  it('deletes an entity after its pending operations', async () => {
    await api.signal('doomed', 'append', 'x');
    const response = await fetch(`${host.url}/fx/df/ledger/doomed`, { method: 'DELETE' });
    expect(response.status).toBe(202);
    await eventually('deletion', async () => ((await api.readViaClient('doomed')).entityExists ? undefined : true));
    // A later signal starts a fresh entity.
    await api.signal('doomed', 'append', 'y');
    expect((await stateWith('doomed', (state) => state.items.length > 0)).items).toEqual(['y']);
  });

  it('lists entities page by page with state and continuation tokens', async () => {
    for (const key of ['list-a', 'list-b', 'list-c']) await api.signal(key, 'append', key);
    for (const key of ['list-a', 'list-b', 'list-c']) await stateWith(key, (state) => state.items.length === 1);
    const seen = new Map<string, unknown>();
    let continuation: string | null = null;
    let pages = 0;
    do {
      const response: Response = await fetch(`${host.url}/fx/df/ledger?top=2`, { headers: continuation ? { 'x-ms-continuation-token': continuation } : {} });
      const page = (await response.json()) as { entities: { entityId: { name: string; key: string }; state: unknown; lastOperationTime: string }[]; continuation: string | null };
      expect(page.entities.length).toBeLessThanOrEqual(2);
      for (const entity of page.entities) {
        expect(entity.entityId.name).toBe('ledger');
        expect(Date.parse(entity.lastOperationTime)).not.toBeNaN();
        seen.set(entity.entityId.key, entity.state);
      }
      continuation = page.continuation;
      pages++;
    } while (continuation !== null && pages < 50);
    expect(pages).toBeGreaterThan(1);
    expect(seen.get('list-b')).toEqual({ items: ['list-b'], spans: [] });
    expect(seen.has('never-signalled')).toBe(false);
  });

  it('refuses signals to entity names the app does not define', async () => {
    const response = await fetch(`${host.url}/runtime/webhooks/durabletask/entities/nosuch/k?op=x`, { method: 'POST' });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 'unknown_entity' } });
  });
});

describe('scheduling', () => {
  it('applies 200 signals to one entity once each, in order', async () => {
    for (let i = 0; i < 200; i++) expect(await api.signalViaClient('order', 'append', i)).toBe(202);
    const state = await stateWith('order', (s) => s.items.length >= 200);
    expect(state.items).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('runs different entities in parallel but one operation at a time per entity', async () => {
    const keys = ['par-1', 'par-2', 'par-3', 'par-4', 'par-5'];
    await Promise.all(keys.map((key) => api.signal(key, 'slow', { ms: 600, tag: key })));
    await api.signal('par-1', 'slow', { ms: 300, tag: 'second' });
    const states = await Promise.all(keys.map((key) => stateWith(key, (state) => state.spans.length === (key === 'par-1' ? 2 : 1))));
    const firstSpans = states.map((state) => state.spans[0]!);
    // All five first operations overlapped in time: each started before any of them ended.
    expect(Math.max(...firstSpans.map((span) => span.start))).toBeLessThan(Math.min(...firstSpans.map((span) => span.end)));
    // The second operation on par-1 ran after the first one finished, not alongside it.
    const [first, second] = states[0]!.spans;
    expect(second!.tag).toBe('second');
    expect(second!.start).toBeGreaterThanOrEqual(first!.end);
  });

  it('delivers signals between entities', async () => {
    await api.signal('sender', 'forward', { to: 'receiver', value: 'hello' });
    expect((await stateWith('receiver', (state) => state.items.length > 0)).items).toEqual(['hello']);
    expect((await api.read('sender'))?.items).toEqual(['forwarded:hello']);
  });

  it("keeps the case of an entity name in a signal an entity sends, as the Durable extension does (another instance than a client's)", async () => {
    // 'forwardMixedCase' signals 'Ledger', 'relay' signals 'ledger'; same sender, so they are delivered in order.
    await api.signal('mixed-sender', 'forwardMixedCase', { to: 'mixed-receiver', value: 'to Ledger' });
    await api.signal('mixed-sender', 'relay', { to: 'mixed-receiver', value: 'to ledger' });
    expect((await stateWith('mixed-receiver', (state) => state.items.length > 0)).items).toEqual(['to ledger']);
    expect((await api.read('mixed-sender'))?.items).toEqual(['forwarded:to Ledger']);
  });

  it('keeps the state when an operation throws and goes on with the next one', async () => {
    await api.signal('faulty', 'append', 1);
    await api.signal('faulty', 'fail');
    await api.signal('faulty', 'append', 2);
    expect((await stateWith('faulty', (state) => state.items.length === 2)).items).toEqual([1, 2]);
    await host.waitForLog(/operation 'fail' threw/);
  });

  it('retries a timed-out batch one operation at a time from the state before it', async () => {
    // A slow first operation lets the next three queue up and run as one batch (batch size 5).
    await api.signal('timeout', 'slow', { ms: 500, tag: 'first' });
    await api.signal('timeout', 'append', 1);
    await api.signal('timeout', 'hang', { ms: 20_000 }); // far beyond functionTimeout (3 s)
    await api.signal('timeout', 'append', 2);
    const state = await stateWith('timeout', (s) => s.items.length >= 2, 20_000);
    expect(state.items).toEqual([1, 2]);
    await host.waitForLog(/retrying them one at a time/);
    await host.waitForLog(/operation 'hang' failed and was dropped/);
  }, 30_000);
});

describe('storage', () => {
  it('round-trips a 1 MB state across a restart', async () => {
    await api.signal('big', 'big', { size: 1_000_000 });
    const expected = expectedBlob(1_000_000);
    expect((await stateWith('big', (state) => state.blob !== undefined)).blob === expected).toBe(true);
    await host.stop();
    host = await startHost(hostOptions());
    api = durableApi(host.url);
    const reloaded = await api.read('big');
    expect(reloaded?.blob?.length).toBe(1_000_000);
    expect(reloaded?.blob === expected).toBe(true);
    // Shrinking it again removes the extra rows (the state stays consistent).
    await api.signal('big', 'big', { size: 10 });
    expect((await stateWith('big', (state) => state.blob?.length === 10)).blob).toBe(expected.slice(0, 10));
  });

  it('keeps the exactly-once marks of an entity signalled by hundreds of entities (more than one table property holds), across a restart', async () => {
    // Each sender leaves a mark of ~90 characters in the receiver's header: 500 of them outgrow one property.
    const senders = Array.from({ length: 500 }, (_, i) => `sender-with-a-long-key-so-that-its-mark-takes-room-${String(i).padStart(4, '0')}`);
    for (const sender of senders) await api.signal(sender, 'relay', { to: 'popular', value: sender });
    await stateWith('popular', (state) => state.items.length === senders.length, 60_000);
    await host.stop();
    host = await startHost(hostOptions());
    api = durableApi(host.url);
    await api.signal(senders[0]!, 'relay', { to: 'popular', value: 'after the restart' });
    const state = await stateWith('popular', (s) => s.items.length === senders.length + 1, 30_000);
    expect(new Set(state.items).size).toBe(senders.length + 1);
    expect(state.items.at(-1)).toBe('after the restart');
  }, 120_000);

  it('needs about 2 storage requests per operation, fewer when operations batch up', async () => {
    await api.signal('cost', 'append', 'warm-up'); // the first touch loads the partition
    await stateWith('cost', (state) => state.items.length === 1);
    let before = await api.stats();
    for (let i = 0; i < 40; i++) await api.signal('cost', 'append', i);
    await stateWith('cost', (state) => state.items.length === 41);
    let after = await api.stats();
    const sequential = (after.storage.requests - before.storage.requests) / 40;
    expect(sequential).toBeLessThanOrEqual(2.05);

    // Queue 40 operations behind a slow one: they are processed in batches of 5.
    before = after;
    await api.signal('cost', 'slow', { ms: 400, tag: 'block' });
    await Promise.all(Array.from({ length: 40 }, (_, i) => api.signal('cost', 'append', `b${i}`)));
    await stateWith('cost', (state) => state.items.length === 81);
    after = await api.stats();
    const batched = (after.storage.requests - before.storage.requests) / 41;
    expect(after.entities.batches - before.entities.batches).toBeLessThanOrEqual(10);
    expect(batched).toBeLessThan(1.5);
    // Reads are served from memory.
    const reads = after.storage.requests;
    for (let i = 0; i < 20; i++) await api.read('cost');
    expect((await api.stats()).storage.requests).toBe(reads);
  });
});
