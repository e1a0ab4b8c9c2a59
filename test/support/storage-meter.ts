/**
 * A counting proxy in front of Azurite: every storage request either runtime makes goes through it,
 * so the suites and the bench can see what a turn costs in storage on both runtimes alike.
 *
 *   const meter = await startStorageMeter(azurite);
 *   meter.connectionString          // → AzureWebJobsStorage: blob, queue and table through the meter
 *   const before = meter.snapshot(); ...; meter.since(before)  // { requests, bytesSent, bytesReceived, byService }
 *   await meter.close();
 *
 * bytesSent counts request bodies (what the runtime writes); bytesReceived counts response bodies
 * (what it reads back). Headers are not counted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AZURITE_ACCOUNT_KEY, AZURITE_ACCOUNT_NAME, type AzuriteHandle } from './azurite';

export type StorageService = 'blob' | 'queue' | 'table';

export interface StorageCounts {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  byService: Record<StorageService, { requests: number; bytesSent: number; bytesReceived: number }>;
}

export interface StorageMeter {
  connectionString: string;
  snapshot(): StorageCounts;
  since(before: StorageCounts): StorageCounts;
  close(): Promise<void>;
}

const SERVICES: StorageService[] = ['blob', 'queue', 'table'];

function emptyCounts(): StorageCounts {
  return { requests: 0, bytesSent: 0, bytesReceived: 0, byService: { blob: zero(), queue: zero(), table: zero() } };
}
function zero() {
  return { requests: 0, bytesSent: 0, bytesReceived: 0 };
}

export async function startStorageMeter(azurite: AzuriteHandle): Promise<StorageMeter> {
  const counts = emptyCounts();
  const servers = await Promise.all(
    SERVICES.map(async (service) => {
      const target = new URL(azurite.endpoints[service]);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
      const server = http.createServer((req, res) => {
        const perService = counts.byService[service];
        counts.requests++;
        perService.requests++;
        const upstream = http.request(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.on('data', (chunk: Buffer) => {
              counts.bytesReceived += chunk.length;
              perService.bytesReceived += chunk.length;
            });
            answer.pipe(res);
          },
        );
        upstream.on('error', () => res.destroy());
        req.on('data', (chunk: Buffer) => {
          counts.bytesSent += chunk.length;
          perService.bytesSent += chunk.length;
        });
        req.pipe(upstream);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { service, server, agent, port: (server.address() as AddressInfo).port };
    }),
  );
  const endpoint = (service: StorageService) => `http://127.0.0.1:${servers.find((s) => s.service === service)?.port ?? 0}/${AZURITE_ACCOUNT_NAME}`;
  const copy = (c: StorageCounts): StorageCounts => JSON.parse(JSON.stringify(c)) as StorageCounts;
  return {
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};` +
      `BlobEndpoint=${endpoint('blob')};QueueEndpoint=${endpoint('queue')};TableEndpoint=${endpoint('table')};`,
    snapshot: () => copy(counts),
    since(before) {
      const now = copy(counts);
      const diff = emptyCounts();
      diff.requests = now.requests - before.requests;
      diff.bytesSent = now.bytesSent - before.bytesSent;
      diff.bytesReceived = now.bytesReceived - before.bytesReceived;
      for (const service of SERVICES) {
        diff.byService[service] = {
          requests: now.byService[service].requests - before.byService[service].requests,
          bytesSent: now.byService[service].bytesSent - before.byService[service].bytesSent,
          bytesReceived: now.byService[service].bytesReceived - before.byService[service].bytesReceived,
        };
      }
      return diff;
    },
    async close() {
      for (const { server, agent } of servers) {
        server.closeAllConnections();
        agent.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
