/**
 * The two runtimes the end-to-end suites run on, behind one small adapter:
 *
 *   local  the project's own host (dist/devhost/main.js) on this checkout, as `npm start` runs it
 *          without Core Tools;
 *   real   the Azure Functions host with the real Durable extension, running the staged deployment
 *          package (scripts/stage-package.mjs): Core Tools' `func start` when `func` is on PATH, else
 *          the host build that FUNCTIONS_HOST_DIR names (CI: ../shared/functions-host/host).
 *
 * The suites never ask which one they drive: test/support/app.ts starts `runtimeFromEnv()` (vitest's
 * projects set TEST_RUNTIME) and hands out URLs that carry the function key where keys are enforced.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './azurite';
import { REPO_ROOT, startHost, type HostExit } from './host';
import { pollUntil } from './poll';

export type RuntimeName = 'local' | 'real';

/** A running app runtime, as the suites see it. */
export interface RuntimeHandle {
  url: string;
  port: number;
  /** The process that serves HTTP (its open descriptors are checked by the fuzz suite). */
  pid: number;
  logs(): string;
  exited: Promise<HostExit>;
  /** Graceful stop; resolves when every process of the runtime has exited. */
  stop(): Promise<HostExit>;
  /** kill -9 of the runtime and every process it started (host and language worker). */
  kill(): Promise<HostExit>;
}

/**
 * What a runtime's HTTP front end does before any app code runs, where the two runtimes differ and
 * the app cannot change it (README "Runtimes" lists these). Suites leave out what a front end cannot do.
 */
export interface FrontEnd {
  /** Answers (a 413) while the client is still uploading an endless body; the Functions host answers only once the upload ends. */
  answersBeforeBodyEnds: boolean;
  /**
   * Passes header values with bytes outside printable ASCII (non-ASCII, control characters) on to the
   * app. The Functions host in HTTP stream mode cannot: its .NET proxy to the Node worker refuses to
   * forward them, and the request is never answered.
   */
  forwardsRawHeaderBytes: boolean;
  /**
   * Refuses a malformed chunked body with a 4xx. The Functions host answers 500 (its proxy to the
   * worker fails reading the body) or, for some (a chunk size with an extension, `5;ext`), never.
   */
  refusesMalformedChunking: boolean;
}

export interface Runtime {
  name: RuntimeName;
  /** What runs, for test names and bench output. */
  description: string;
  /** The key to send on app routes, when the runtime enforces function keys (as Azure does). */
  functionKey: string | undefined;
  /** The master key, for the host's admin and Durable webhook APIs, when keys are enforced. */
  masterKey: string | undefined;
  /** The folder that the app runs from. */
  appRoot: string;
  frontEnd: FrontEnd;
  start(env: Record<string, string>): Promise<RuntimeHandle>;
}

/** Where the real host runs the staged deployment package (see test/support/stage-real-host.ts). */
export const STAGED_APP = path.join(REPO_ROOT, '.realhost', 'app');

const WEBHOST_DLL = 'Microsoft.Azure.WebJobs.Script.WebHost.dll';

function onPath(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const location = found.stdout.trim();
  return found.status === 0 && location !== '' ? location : undefined;
}

/** How the real host would be run here, or why it cannot be. */
export function realHostSetup(): { kind: 'func'; func: string } | { kind: 'host-build'; hostDir: string } | { kind: 'unavailable'; reason: string } {
  const func = onPath('func');
  if (func !== undefined) return { kind: 'func', func };
  const hostDir = process.env.FUNCTIONS_HOST_DIR;
  if (hostDir === undefined || hostDir === '') {
    return { kind: 'unavailable', reason: 'neither Core Tools (`func`) is on PATH nor FUNCTIONS_HOST_DIR names a Functions host build' };
  }
  if (!existsSync(path.join(hostDir, WEBHOST_DLL))) return { kind: 'unavailable', reason: `FUNCTIONS_HOST_DIR=${hostDir} holds no ${WEBHOST_DLL}` };
  if (onPath('dotnet') === undefined) return { kind: 'unavailable', reason: 'the .NET runtime (dotnet) that runs the host build is not on PATH' };
  return { kind: 'host-build', hostDir: path.resolve(hostDir) };
}

export function localRuntime(): Runtime {
  return {
    name: 'local',
    description: 'local host (devhost)',
    functionKey: undefined,
    masterKey: undefined,
    appRoot: REPO_ROOT,
    frontEnd: { answersBeforeBodyEnds: true, forwardsRawHeaderBytes: true, refusesMalformedChunking: true },
    async start(env) {
      const host = await startHost({ appRoot: REPO_ROOT, env });
      return { url: host.url, port: host.port, pid: host.pid, logs: host.logs, exited: host.exited, stop: host.stop, kill: host.kill };
    },
  };
}

/**
 * The real host. Each start gets its own port and secrets folder; the keys are ours, written before
 * the start as the host's file-based secret storage expects, so the suites know them up front.
 */
export function realRuntime(appRoot: string = STAGED_APP): Runtime {
  const found = realHostSetup();
  if (found.kind === 'unavailable') throw new Error(`The real Functions host is not available: ${found.reason}.`);
  const setup = found;
  const masterKey = randomBytes(30).toString('base64url');
  const functionKey = randomBytes(30).toString('base64url');
  return {
    name: 'real',
    description: setup.kind === 'func' ? `Functions host (func start, ${setup.func})` : `Functions host (${path.relative(REPO_ROOT, setup.hostDir) || setup.hostDir})`,
    functionKey,
    masterKey,
    appRoot,
    frontEnd: { answersBeforeBodyEnds: false, forwardsRawHeaderBytes: false, refusesMalformedChunking: false },
    async start(env) {
      // The port is free when picked but the host binds it seconds later; if something took it
      // meanwhile (another suite's Azurite or client), start again on another.
      for (let attempt = 1; ; attempt++) {
        try {
          return await startOnce(env, await freePort());
        } catch (err) {
          if (attempt >= 3 || !(err instanceof Error) || !/address already in use/i.test(err.message)) throw err;
        }
      }
    },
  };

  async function startOnce(env: Record<string, string>, port: number): Promise<RuntimeHandle> {
    const secrets = mkdtempSync(path.join(tmpdir(), 'realhost-secrets-'));
    writeSecrets(secrets, masterKey, functionKey, port);
    const hostEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...env,
      AzureWebJobsScriptRoot: appRoot,
      FUNCTIONS_WORKER_RUNTIME: 'node',
      AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
      ASPNETCORE_URLS: `http://127.0.0.1:${port}`,
      // Without it every durable client call is a 500 ("Webhooks are not configured").
      WEBSITE_HOSTNAME: `127.0.0.1:${port}`,
      AzureWebJobsSecretStorageType: 'files',
      FUNCTIONS_SECRETS_PATH: secrets,
      DOTNET_ROLL_FORWARD: 'Major',
      DOTNET_CLI_TELEMETRY_OPTOUT: '1',
      AzureFunctionsJobHost__logging__logLevel__default: 'Warning',
      AzureFunctionsJobHost__logging__logLevel__Host__Startup: 'Information',
      AzureFunctionsJobHost__logging__logLevel__Function: 'Information',
    };
    // Set on these machines; with it the host believes it runs on Linux Consumption.
    delete hostEnv.CONTAINER_NAME;
    const child =
      setup.kind === 'func'
        ? spawn(setup.func, ['start', '--port', String(port)], { cwd: appRoot, env: hostEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
        : spawn('dotnet', [WEBHOST_DLL], { cwd: setup.hostDir, env: hostEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const handle = superviseProcessGroup(child, `http://127.0.0.1:${port}`, port, () => rmSync(secrets, { recursive: true, force: true }));
    try {
      await waitUntilServing(handle, masterKey);
    } catch (err) {
      await handle.kill();
      throw err;
    }
    return handle;
  }
}

function writeSecrets(dir: string, masterKey: string, functionKey: string, port: number): void {
  const secrets = {
    masterKey: { name: 'master', value: masterKey, encrypted: false },
    functionKeys: [{ name: 'default', value: functionKey, encrypted: false }],
    systemKeys: [],
    hostName: `127.0.0.1:${port}`,
    instanceId: randomBytes(16).toString('hex'),
    source: 'runtime',
    decryptionKeyId: '',
  };
  writeFileSync(path.join(dir, 'host.json'), JSON.stringify(secrets, null, 2));
}

/** Processes still running, so a failed test cannot leak a host (killed with their group on exit). */
const liveGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
});

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/**
 * The host runs in its own process group with its Node worker, so a kill reaches both, as a crash of
 * the instance would. `exited` resolves when the host process is gone; the group is then killed so
 * no worker outlives it.
 */
function superviseProcessGroup(child: ChildProcess, url: string, port: number, cleanup: () => void): RuntimeHandle {
  const pgid = child.pid ?? -1;
  liveGroups.add(pgid);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<HostExit>((resolve) => {
    child.once('exit', (code, signal) => {
      killGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
      cleanup();
      resolve({ code, signal });
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    url,
    port,
    pid: pgid,
    logs: () => output,
    exited,
    async stop() {
      if (running()) child.kill('SIGTERM');
      // The host stops in a few seconds while its storage answers; past that, a crash is as good.
      const forced = setTimeout(() => killGroup(pgid, 'SIGKILL'), 20_000);
      const exit = await exited;
      clearTimeout(forced);
      return exit;
    },
    async kill() {
      if (running()) killGroup(pgid, 'SIGKILL');
      return exited;
    },
  };
}

/** Ready = the host reports Running and the app's functions are indexed (the worker has loaded the app). */
async function waitUntilServing(handle: RuntimeHandle, masterKey: string, timeoutMs = 90_000): Promise<void> {
  const admin = (route: string) => fetch(`${handle.url}${route}`, { headers: { 'x-functions-key': masterKey }, signal: AbortSignal.timeout(2_000) });
  const serving = pollUntil(
    'the Functions host to serve the app',
    async () => {
      const status = await admin('/admin/host/status');
      if (!status.ok || ((await status.json()) as { state?: string }).state !== 'Running') return undefined;
      const functions = await admin('/admin/functions');
      return functions.ok && ((await functions.json()) as unknown[]).length > 0 ? true : undefined;
    },
    timeoutMs,
    200,
  );
  let startingUp = true;
  const exitedEarly = handle.exited.then(() => {
    if (startingUp) throw new Error('The Functions host exited during start-up');
  });
  exitedEarly.catch(() => {}); // once started, a later exit is the caller's business
  try {
    await Promise.race([serving, exitedEarly]);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}:\n${handle.logs().slice(-8_000)}`, { cause: err });
  } finally {
    startingUp = false;
  }
}

let selected: Runtime | undefined;

/**
 * The runtime this test process drives: TEST_RUNTIME (set per vitest project), local by default.
 * One per process, so its keys are known before any host starts (the fuzz builds requests up front).
 */
export function runtimeFromEnv(): Runtime {
  if (selected !== undefined) return selected;
  const name = process.env.TEST_RUNTIME ?? 'local';
  if (name !== 'local' && name !== 'real') throw new Error(`TEST_RUNTIME must be "local" or "real", not "${name}"`);
  selected = name === 'local' ? localRuntime() : realRuntime();
  return selected;
}
