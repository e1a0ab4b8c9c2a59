/**
 * `npm start` (scripts/start.mjs) leaves nothing behind: however it ends — its terminal closes
 * (SIGHUP to its process group), or kill -9 of start.mjs, of npm (the pid `npm start &` prints), of
 * the `sh -c` npm runs start.mjs through or of a leash — the local host and Azurite it started end
 * too, and the ports are free for the next start. Linux only (reads /proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/azurite';
import { REPO_ROOT } from '../support/host';
import { pollUntil } from '../support/poll';

const AZURITE_PORTS = [10000, 10001, 10002];

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function parents(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command may hold spaces and parentheses: the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  return parents;
}

/** Every live process whose parent chain leads to `root`. */
function descendants(root: number): number[] {
  const parentOf = parents();
  const found: number[] = [];
  const walk = (pid: number): void => {
    for (const [child, parent] of parentOf) {
      if (parent !== pid) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(root);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie is dead but not yet reaped by its (new) parent.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Test clean-up only: SIGKILL `root` and whatever it started (leashes have their own process groups). */
function killTree(root: number): void {
  for (const pid of [root, ...descendants(root)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/**
 * `via: 'npm'` runs it as a user does, `npm start` (npm -> sh -c -> node scripts/start.mjs), with
 * --ignore-scripts so that prestart does not rebuild dist/ under the other tests; `via: 'node'` runs
 * scripts/start.mjs directly. Either way in its own process group, as a terminal gives it.
 */
async function startNpmStart(port: number, via: 'npm' | 'node'): Promise<{ child: ChildProcess; output: () => string }> {
  const [command, args] =
    via === 'npm' ? ['npm', ['start', '--ignore-scripts', '--', '--port', String(port)]] : [process.execPath, [path.join(REPO_ROOT, 'scripts', 'start.mjs'), '--port', String(port)]];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      OPENAI_BASE_URL: '',
      AZURE_OPENAI_ENDPOINT: '',
      PATH: withoutFunc(),
      npm_config_update_notifier: 'false',
    },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await pollUntil('npm start to serve', async () => ((await answers(port)) ? true : undefined), 60_000, 100).catch((err: unknown) => {
    killTree(child.pid ?? 0);
    throw new Error(`${String(err)}\n${output}`);
  });
  return { child, output: () => output };
}

/** This test is about the local host, so Core Tools (when installed) are kept out of its PATH. */
function withoutFunc(): string {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => {
      try {
        return !readdirSync(dir).includes('func');
      } catch {
        return true;
      }
    })
    .join(path.delimiter);
}

/** The shell npm runs the script through: npm's only child. */
function scriptShell(npm: number): number {
  const children = [...parents()].filter(([, parent]) => parent === npm).map(([pid]) => pid);
  expect(children).toHaveLength(1);
  expect(readFileSync(`/proc/${children[0]}/cmdline`, 'utf8')).toMatch(/^(\/bin\/)?sh\0-c\0/);
  return children[0] ?? 0;
}

/** The leash (scripts/leash.mjs) that runs the local host. */
function hostLeash(root: number): number {
  const leashes = descendants(root).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.some((arg) => arg.endsWith('leash.mjs')) && argv.some((arg) => arg.endsWith(path.join('devhost', 'main.js')));
    } catch {
      return false;
    }
  });
  expect(leashes).toHaveLength(1);
  return leashes[0] ?? 0;
}

describe.runIf(process.platform === 'linux')('npm start', () => {
  it.each<[string, 'npm' | 'node', (child: ChildProcess) => void]>([
    ['its terminal closes (SIGHUP to the process group)', 'node', (child: ChildProcess) => process.kill(-(child.pid ?? 0), 'SIGHUP')],
    ['scripts/start.mjs is killed with kill -9', 'node', (child: ChildProcess) => process.kill(child.pid ?? 0, 'SIGKILL')],
    // What a user does after `npm start &`: npm's own pid. Nothing reaches the shell or start.mjs below.
    ['npm is killed with kill -9', 'npm', (child: ChildProcess) => process.kill(child.pid ?? 0, 'SIGKILL')],
    ['the sh -c between npm and start.mjs is killed with kill -9', 'npm', (child: ChildProcess) => process.kill(scriptShell(child.pid ?? 0), 'SIGKILL')],
    // start.mjs then stops (its runtime is gone), and the local host must not stay behind orphaned.
    ['the local host\'s leash is killed with kill -9', 'node', (child: ChildProcess) => process.kill(hostLeash(child.pid ?? 0), 'SIGKILL')],
  ])('stops the local host and Azurite when %s', async (_how, via, end) => {
    const taken = async (): Promise<number[]> => {
      const found = [];
      for (const port of AZURITE_PORTS) if (await answers(port)) found.push(port);
      return found;
    };
    // Azurite's fixed ports must be free, or start.mjs would (rightly) use the storage already there.
    // (A few seconds' grace for one that is just ending.)
    await pollUntil('ports 10000-10002 to be free', async () => ((await taken()).length === 0 ? true : undefined), 5_000, 100).catch(() => undefined);
    expect(await taken(), 'ports 10000-10002 are in use: stop the Azurite that holds them to run this test').toEqual([]);
    const port = await freePort();
    const { child, output } = await startNpmStart(port, via);
    let started: number[] = [];
    try {
      await pollUntil('Azurite to answer', async () => ((await answers(10002)) ? true : undefined), 30_000, 100);
      started = descendants(child.pid ?? 0);
      // two leashes, the host, Azurite; through npm also the shell and start.mjs
      expect(started.length, output()).toBeGreaterThanOrEqual(via === 'npm' ? 6 : 4);

      end(child);
      await pollUntil(`every process npm start started to end\n${output()}`, async () => (started.every((pid) => !alive(pid)) ? true : undefined), 30_000, 100);
      for (const p of [port, ...AZURITE_PORTS]) expect(await answers(p), `port ${p} still answers`).toBe(false);
    } finally {
      // A failed run must not leave the next test (or the machine) with the ports taken.
      const left = [child.pid ?? 0, ...started].filter(alive);
      for (const pid of left) killTree(pid);
      await pollUntil('clean-up', async () => (left.every((pid) => !alive(pid)) ? true : undefined), 10_000, 50);
    }
  }, 120_000);
});
