/**
 * Azurite (the Azure Storage emulator from node_modules) for tests: blob, queue and table services
 * (the real host's Durable extension needs all three; the local host uses the table service), in
 * memory, on 127.0.0.1 and free ports.
 *
 *   const azurite = await startAzurite();
 *   azurite.connectionString   // → AzureWebJobsStorage for the host under test
 *   await azurite.stop();      // SIGTERM, awaited; the data is gone with the process
 *
 * Data outlives any number of host restarts while Azurite runs, which is what crash tests need.
 * Start-up waits for Azurite's own "successfully started" line (no sleeping), and retries on another
 * port if the one picked was taken in the meantime.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT_NAME = 'devstoreaccount1';
export const AZURITE_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteHandle {
  /** Account connection string with the blob, queue and table endpoints. */
  connectionString: string;
  tableEndpoint: string;
  endpoints: { blob: string; queue: string; table: string };
  /** The table service's port. */
  port: number;
  /** Process id, for memory readings in benchmarks. */
  pid: number;
  /** Everything Azurite printed, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Give up waiting for the ready line after this long (default 30 s). */
  startTimeoutMs?: number;
}

const READY_PATTERNS = ['Blob', 'Queue', 'Table'].map((service) => new RegExp(`${service} service (is )?successfully (started|listening)`, 'i'));

/** Last resort if a test process exits without stop(): do not leave emulators behind. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function azuriteScript(): string {
  const require = createRequire(__filename);
  const packageJson = require.resolve('azurite/package.json');
  return path.join(path.dirname(packageJson), 'dist', 'src', 'azurite.js');
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startOnce(ports: { blob: number; queue: number; table: number }, timeoutMs: number): Promise<AzuriteHandle> {
  const child = spawn(
    process.execPath,
    [
      azuriteScript(),
      '--inMemoryPersistence',
      ...['blob', 'queue', 'table'].flatMap((service) => [`--${service}Host`, '127.0.0.1', `--${service}Port`, String(ports[service as keyof typeof ports])]),
      '--silent',
      '--loose',
      '--skipApiVersionCheck',
      '--disableTelemetry',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (READY_PATTERNS.every((pattern) => pattern.test(output))) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    await waitForExit(child);
    throw err;
  }
  const endpoint = (port: number) => `http://127.0.0.1:${port}/${AZURITE_ACCOUNT_NAME}`;
  const tableEndpoint = endpoint(ports.table);
  return {
    port: ports.table,
    pid: child.pid ?? 0,
    tableEndpoint,
    endpoints: { blob: endpoint(ports.blob), queue: endpoint(ports.queue), table: tableEndpoint },
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};` +
      `BlobEndpoint=${endpoint(ports.blob)};QueueEndpoint=${endpoint(ports.queue)};TableEndpoint=${tableEndpoint};`,
    logs: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      const exited = waitForExit(child);
      const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(forced);
    },
  };
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteHandle> {
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce({ blob: await freePort(), queue: await freePort(), table: await freePort() }, timeoutMs);
    } catch (err) {
      lastError = err; // most likely a port was taken between freePort() and Azurite's bind
    }
  }
  throw lastError;
}
