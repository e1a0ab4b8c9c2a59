/**
 * Azurite (the Azure Storage emulator from node_modules) for tests: the table service only,
 * in memory, on 127.0.0.1 and a free port.
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
  /** Account connection string with the table endpoint only. */
  connectionString: string;
  tableEndpoint: string;
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

const READY_PATTERN = /Table service (is )?successfully (started|listening)/i;

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

function azuriteTableScript(): string {
  const require = createRequire(__filename);
  const packageJson = require.resolve('azurite/package.json');
  return path.join(path.dirname(packageJson), 'dist', 'src', 'table', 'main.js');
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startOnce(port: number, timeoutMs: number): Promise<AzuriteHandle> {
  const child = spawn(
    process.execPath,
    [azuriteTableScript(), '--inMemoryPersistence', '--tableHost', '127.0.0.1', '--tablePort', String(port), '--silent', '--loose', '--skipApiVersionCheck', '--disableTelemetry'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (READY_PATTERN.test(output)) {
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
  const tableEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT_NAME}`;
  return {
    port,
    pid: child.pid ?? 0,
    tableEndpoint,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};AccountKey=${AZURITE_ACCOUNT_KEY};TableEndpoint=${tableEndpoint};`,
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
      return await startOnce(await freePort(), timeoutMs);
    } catch (err) {
      lastError = err; // most likely the port was taken between freePort() and Azurite's bind
    }
  }
  throw lastError;
}
