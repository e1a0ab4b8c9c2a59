/**
 * Runs the compiled local host (`node dist/devhost/main.js`) as a child process for end-to-end tests.
 *
 *   const host = await startHost({ appRoot: 'test/fixtures/devhost-app', env: { AzureWebJobsStorage: azurite.connectionString } });
 *   await fetch(`${host.url}/api/...`);
 *   host.logs();                       // stdout+stderr so far (also in failure messages)
 *   await host.waitForLog(/slow-start/); // resolves when a matching line appears (with a deadline)
 *   await host.stop();                 // SIGTERM, resolves when the process has exited
 *   await host.kill();                 // SIGKILL (crash), resolves when the process has exited
 *
 *   const failed = await runHostExpectingExit({ appRoot });  // for start-up failures: { code, logs }
 *   afterAll(stopAllHosts);            // stops every host this test file started and did not stop
 *
 * `startHost` resolves when the host prints its "Local host listening on <url>" line; it uses
 * `--port 0` unless a port is given, and takes the real URL from that line. Extra `env` entries
 * override the test process's environment (and so win over the app's local.settings.json).
 * Tests must run after `npm run build` (npm test builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const HOST_MAIN = path.join(REPO_ROOT, 'dist', 'devhost', 'main.js');

export interface HostOptions {
  appRoot: string;
  env?: Record<string, string | undefined>;
  /** Default 0: the host picks a free port and reports it. */
  port?: number;
  args?: string[];
  /** Options for node itself, e.g. ['--cpu-prof'] to profile the host. */
  nodeArgs?: string[];
  readyTimeoutMs?: number;
}

export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HostHandle {
  url: string;
  port: number;
  pid: number;
  logs(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process exits for whatever reason. */
  exited: Promise<HostExit>;
  stop(): Promise<HostExit>;
  kill(): Promise<HostExit>;
}

const READY_LINE = /Local host listening on (http:\/\/[^\s]+)/;

/** Hosts still running, so a failed test cannot leak them (stopAllHosts, and a last-resort kill on exit). */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** SIGTERM to every host started from this process that is still running; resolves when all exited. */
export async function stopAllHosts(): Promise<void> {
  await Promise.all(
    [...liveChildren].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const forced = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(forced);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

function ensureBuilt(): void {
  if (!existsSync(HOST_MAIN)) {
    throw new Error(`${path.relative(REPO_ROOT, HOST_MAIN)} is missing: run \`npm run build\` before these tests (npm test does it).`);
  }
}

function spawnHost(options: HostOptions): { child: ChildProcess; logs: () => string; onOutput: (listener: () => void) => () => void; exited: Promise<HostExit> } {
  ensureBuilt();
  const args = [...(options.nodeArgs ?? []), HOST_MAIN, '--app-root', path.resolve(REPO_ROOT, options.appRoot), '--port', String(options.port ?? 0), ...(options.args ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const listener of [...listeners]) listener();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<HostExit>((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      for (const listener of [...listeners]) listener();
      resolve({ code, signal });
    });
  });
  return {
    child,
    logs: () => output,
    onOutput: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    exited,
  };
}

function waitForOutput(
  spawned: ReturnType<typeof spawnHost>,
  pattern: RegExp,
  timeoutMs: number,
  what: string,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = (): void => {
      if (done) return;
      const match = pattern.exec(spawned.logs());
      if (match) {
        finish();
        resolve(match);
      } else if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) {
        finish();
        reject(new Error(`The host exited before ${what}:\n${spawned.logs()}`));
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}:\n${spawned.logs()}`));
    }, timeoutMs);
    const unsubscribe = spawned.onOutput(check);
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      unsubscribe();
    };
    check();
  });
}

export async function startHost(options: HostOptions): Promise<HostHandle> {
  const spawned = spawnHost(options);
  const ready = await waitForOutput(spawned, READY_LINE, options.readyTimeoutMs ?? 30_000, 'its "Local host listening on" line');
  const url = ready[1] ?? '';
  const { child } = spawned;
  const signalAndWait = (signal: NodeJS.Signals): Promise<HostExit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return spawned.exited;
  };
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid ?? -1,
    logs: spawned.logs,
    waitForLog: async (pattern, timeoutMs = 15_000) => (await waitForOutput(spawned, pattern, timeoutMs, `a log line matching ${pattern}`))[0],
    exited: spawned.exited,
    stop: async () => {
      const forced = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const exit = await signalAndWait('SIGTERM');
      clearTimeout(forced);
      return exit;
    },
    kill: () => signalAndWait('SIGKILL'),
  };
}

/** Runs the host until it exits by itself (start-up failures); kills it if it starts instead. */
export async function runHostExpectingExit(options: HostOptions & { timeoutMs?: number }): Promise<HostExit & { logs: string }> {
  const spawned = spawnHost(options);
  const timer = setTimeout(() => spawned.child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const exit = await spawned.exited;
  clearTimeout(timer);
  return { ...exit, logs: spawned.logs() };
}
