/**
 * Helpers for the durable entity tests against the fixture app: signal/read through the fixture's
 * HTTP starters (the durable-functions client) or the host's Durable HTTP API directly, and
 * polling with a deadline for an observable condition.
 */
export interface LedgerState {
  items: unknown[];
  spans: { tag: string; start: number; end: number }[];
  blob?: string;
}

export function durableApi(hostUrl: string): {
  signal(key: string, op: string, input?: unknown): Promise<number>;
  signalViaClient(key: string, op: string, input?: unknown): Promise<number>;
  readViaClient(key: string): Promise<{ entityExists: boolean; entityState?: LedgerState }>;
  read(key: string): Promise<LedgerState | undefined>;
  stats(): Promise<Stats>;
} {
  return {
    async signal(key, op, input) {
      const response = await fetch(`${hostUrl}/runtime/webhooks/durabletask/entities/ledger/${encodeURIComponent(key)}?op=${op}`, {
        method: 'POST',
        body: input === undefined ? undefined : JSON.stringify(input),
        headers: { 'content-type': 'application/json' },
      });
      await response.arrayBuffer();
      return response.status;
    },
    async signalViaClient(key, op, input) {
      const response = await fetch(`${hostUrl}/fx/df/ledger/${encodeURIComponent(key)}/${op}`, { method: 'POST', body: input === undefined ? '' : JSON.stringify(input) });
      await response.arrayBuffer();
      return response.status;
    },
    async readViaClient(key) {
      const response = await fetch(`${hostUrl}/fx/df/ledger/${encodeURIComponent(key)}`);
      return (await response.json()) as { entityExists: boolean; entityState?: LedgerState };
    },
    async read(key) {
      const response = await fetch(`${hostUrl}/runtime/webhooks/durabletask/entities/ledger/${encodeURIComponent(key)}`);
      if (response.status === 404) return undefined;
      if (response.status !== 200) throw new Error(`read ${key}: HTTP ${response.status}`);
      return (await response.json()) as LedgerState;
    },
    async stats() {
      return (await (await fetch(`${hostUrl}/admin/devhost/stats`)).json()) as Stats;
    },
  };
}

export interface Stats {
  storage: { requests: number; byKind: Record<string, number> };
  entities: { operationsAccepted: number; operationsProcessed: number; operationsFailed: number; batches: number; batchRetriesOneByOne: number; signalsDelivered: number };
}

export { pollUntil as eventually } from '../support/poll';

/** The fixture's `big` operation builds this string (chunk boundaries fall inside surrogate pairs). */
export function expectedBlob(size: number): string {
  const unit = 'x'.repeat(31_999) + '\u{1F600}';
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}
