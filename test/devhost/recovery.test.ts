// Exactly-once delivery of entity-to-entity signals, checked against hand-made storage states that a
// crash can leave: an outbox row whose signal the receiver already processed, and one whose signal is
// still pending at the receiver. On restart the host must deliver neither a second time.
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEntityId, toPartitionKey } from '../../devhost/durable/entityId';
import { operationRowKey, outboxRowKey } from '../../devhost/durable/tableStore';
import { entityTableName } from '../../devhost/storage/tableClient';
import { startAzurite, type AzuriteHandle } from '../support/azurite';
import { startHost, stopAllHosts } from '../support/host';
import { durableApi, eventually } from './durableHelpers';

let azurite: AzuriteHandle;
let table: TableClient;

const start = () => startHost({ appRoot: 'test/fixtures/devhost-app', env: { AzureWebJobsStorage: azurite.connectionString }, args: ['--quiet'] });
const partition = (key: string) => toPartitionKey(makeEntityId('ledger', key));

async function rowKeys(key: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const row of table.listEntities({ queryOptions: { filter: `PartitionKey eq '${partition(key)}'` } })) keys.push(row.rowKey ?? '');
  return keys;
}

function outboxRow(sourceKey: string, seq: number, signal: { targetKey: string; input: string }) {
  const json = JSON.stringify([{ targetName: 'ledger', targetKey: signal.targetKey, name: 'append', input: signal.input }]);
  return { partitionKey: partition(sourceKey), rowKey: outboxRowKey(seq, 0), part: 0, parts: 1, chunks: 1, c000: json };
}

beforeAll(async () => {
  azurite = await startAzurite();
  table = TableClient.fromConnectionString(azurite.connectionString, entityTableName('DevhostFixture'), { allowInsecureConnection: true });
});

afterAll(async () => {
  await stopAllHosts();
  await azurite?.stop();
});

describe('signal delivery after a crash', () => {
  it('does not re-deliver a signal the receiver already processed', async () => {
    let host = await start();
    let api = durableApi(host.url);
    await api.signal('src-a', 'forward', { to: 'dst-a', value: 'once' });
    await eventually('delivery', async () => ((await api.read('dst-a'))?.items.length === 1 ? true : undefined));
    await eventually('outbox cleanup', async () => ((await rowKeys('src-a')).some((key) => key.startsWith('out-')) ? undefined : true));
    await host.stop();

    // Put the delivered outbox back, as if the host had died before deleting it.
    const header = await table.getEntity<{ lastAppliedSeq: number }>(partition('src-a'), 'state');
    await table.createEntity(outboxRow('src-a', header.lastAppliedSeq, { targetKey: 'dst-a', input: '"once"' }));

    host = await start();
    api = durableApi(host.url);
    await eventually('re-delivery attempt', async () => ((await rowKeys('src-a')).some((key) => key.startsWith('out-')) ? undefined : true));
    await eventually('receiver idle', async () => ((await rowKeys('dst-a')).some((key) => key.startsWith('op-')) ? undefined : true));
    expect((await api.read('dst-a'))?.items).toEqual(['once']);
    await host.stop();
  });

  it('keeps a stateless sender\'s signal numbering across restarts, so receivers do not discard new signals', async () => {
    for (const value of ['v1', 'v2', 'v3']) {
      const host = await start();
      const api = durableApi(host.url);
      await api.signal('relay-src', 'relay', { to: 'relay-dst', value });
      await eventually(`delivery of ${value}`, async () => ((await api.read('relay-dst'))?.items.includes(value) ? true : undefined));
      expect(await api.read('relay-src')).toBeUndefined(); // the relay never had state
      await host.stop();
    }
    const host = await start();
    expect((await durableApi(host.url).read('relay-dst'))?.items).toEqual(['v1', 'v2', 'v3']);
    await host.stop();
  });

  it('does not re-deliver a signal that is still pending at the receiver', async () => {
    // The receiver holds the delivered operation (not processed yet) and the sender still has its outbox.
    const origin = { originSource: '@ledger@src-b', originSeq: 7, originIndex: 0 };
    await table.createEntity({ partitionKey: partition('dst-b'), rowKey: operationRowKey(1), kind: 'signal', name: 'append', inputChunks: 1, i000: '"pending"', acceptedAt: new Date().toISOString(), ...origin });
    await table.createEntity(outboxRow('src-b', 7, { targetKey: 'dst-b', input: '"pending"' }));

    const host = await start();
    const api = durableApi(host.url);
    await eventually('outbox handled', async () => ((await rowKeys('src-b')).some((key) => key.startsWith('out-')) ? undefined : true));
    await eventually('receiver idle', async () => ((await rowKeys('dst-b')).some((key) => key.startsWith('op-')) ? undefined : true));
    expect((await api.read('dst-b'))?.items).toEqual(['pending']);
    expect(host.logs()).toMatch(/resuming 1 pending operation/);
    await host.stop();
  });
});
