// Crash safety: the host is killed with SIGKILL mid-batch, right after a burst of accepted signals,
// at random moments under load, and while entities signal each other; restarted on the same Azurite
// data, every operation that was answered 202 is applied exactly once, in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteHandle } from '../support/azurite';
import { startHost, stopAllHosts, type HostHandle } from '../support/host';
import { durableApi, eventually, type LedgerState } from './durableHelpers';

let azurite: AzuriteHandle;
let host: HostHandle | undefined;

const start = async (): Promise<{ host: HostHandle; api: ReturnType<typeof durableApi> }> => {
  host = await startHost({ appRoot: 'test/fixtures/devhost-app', env: { AzureWebJobsStorage: azurite.connectionString }, args: ['--quiet'] });
  return { host, api: durableApi(host.url) };
};

beforeAll(async () => {
  azurite = await startAzurite();
});

afterAll(async () => {
  await stopAllHosts();
  await azurite?.stop();
});

const stateWith = (api: ReturnType<typeof durableApi>, key: string, done: (state: LedgerState) => boolean) =>
  eventually(`ledger@${key}`, async () => {
    const state = await api.read(key);
    return state !== undefined && done(state) ? state : undefined;
  });

describe('kill -9 and restart', () => {
  it('re-runs an interrupted batch and everything queued behind it, once each', async () => {
    const started = await start();
    const first = started.host;
    let api = started.api;
    expect(await api.signal('mid-batch', 'slow', { ms: 2_000, tag: 'interrupted' })).toBe(202); // under functionTimeout (3 s)
    await first.waitForLog(/slow-start mid-batch interrupted/);
    for (let i = 0; i < 30; i++) expect(await api.signal('mid-batch', 'append', i)).toBe(202);
    await first.kill(); // the slow operation is running; nothing of it or after it is committed

    const second = await start();
    api = second.api;
    const state = await stateWith(api, 'mid-batch', (s) => s.items.length >= 30 && s.spans.length >= 1);
    expect(state.spans.map((span) => span.tag)).toEqual(['interrupted']);
    expect(state.items).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(second.host.logs()).toMatch(/resuming 31 pending operation/);
    await second.host.stop();
  });

  it('loses nothing accepted when killed right after a burst', async () => {
    const started = await start();
    const first = started.host;
    let api = started.api;
    await api.signal('burst', 'slow', { ms: 1_500, tag: 'block' });
    for (let i = 0; i < 100; i++) expect(await api.signal('burst', 'append', i)).toBe(202);
    await first.kill();
    ({ api } = await start());
    const state = await stateWith(api, 'burst', (s) => s.items.length >= 100);
    expect(state.items).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await host?.stop();
  });

  it('applies accepted operations exactly once in order across kills at random moments', async () => {
    const expectedRounds: { accepted: string[]; inFlight: string | undefined }[] = [];
    for (let round = 0; round < 4; round++) {
      const { host: current, api } = await start();
      const accepted: string[] = [];
      let inFlight: string | undefined;
      const sender = (async () => {
        for (let i = 0; ; i++) {
          const value = `r${round}-${i}`;
          inFlight = value;
          try {
            if ((await api.signal('random', 'append', value)) !== 202) return;
          } catch {
            return; // the host died while this request was in flight
          }
          accepted.push(value);
          inFlight = undefined;
        }
      })();
      await current.waitForLog(/Local host listening/);
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.floor(Math.random() * 250))); // let load build up, then crash
      await current.kill();
      await sender;
      expect(accepted.length).toBeGreaterThan(0);
      expectedRounds.push({ accepted, inFlight });
    }
    const { api } = await start();
    const lastAccepted = expectedRounds.at(-1)!.accepted.at(-1)!;
    const state = await stateWith(api, 'random', (s) => s.items.includes(lastAccepted));
    const items = state.items as string[];
    expect(new Set(items).size).toBe(items.length); // nothing applied twice
    let position = 0;
    for (const { accepted, inFlight } of expectedRounds) {
      expect(items.slice(position, position + accepted.length)).toEqual(accepted);
      position += accepted.length;
      // The request in flight at the kill may or may not have been stored; if it was, it comes right here.
      if (inFlight !== undefined && items[position] === inFlight) position++;
    }
    expect(position).toBe(items.length);
    await host?.stop();
  }, 60_000);

  it('delivers entity-to-entity signals exactly once across a kill', async () => {
    const started = await start();
    const first = started.host;
    let api = started.api;
    // Values start at 1: the SDK drops falsy inputs (0) of signals sent from entities.
    for (let i = 1; i <= 30; i++) expect(await api.signal('fwd-src', 'forward', { to: 'fwd-dst', value: i })).toBe(202);
    await first.kill();
    ({ api } = await start());
    const source = await stateWith(api, 'fwd-src', (s) => s.items.length >= 30);
    expect(source.items).toEqual(Array.from({ length: 30 }, (_, i) => `forwarded:${i + 1}`));
    const target = await stateWith(api, 'fwd-dst', (s) => s.items.length >= 30);
    expect(target.items).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await host?.stop();
  });
});
