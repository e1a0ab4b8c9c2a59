/**
 * `npm start` (scripts/start.mjs) leaves nothing behind: however it ends — its terminal closes
 * (SIGHUP to its process group) or it is killed with kill -9 — the local host and Azurite it started
 * end too, and the ports are free for the next start. Linux only (reads /proc).
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

/** Every live process whose parent chain leads to `root`. */
function descendants(root: number): number[] {
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
  const found: number[] = [];
  const walk = (pid: number): void => {
    for (const [child, parent] of parents) {
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

async function startNpmStart(port: number): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'start.mjs'), '--port', String(port)], {
    cwd: REPO_ROOT,
    // Its own process group, as a terminal gives it.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AzureWebJobsStorage: 'UseDevelopmentStorage=true', OPENAI_BASE_URL: '', AZURE_OPENAI_ENDPOINT: '', PATH: withoutFunc() },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await pollUntil('npm start to serve', async () => ((await answers(port)) ? true : undefined), 60_000, 100).catch((err: unknown) => {
    process.kill(-(child.pid ?? 0), 'SIGKILL');
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

describe.runIf(process.platform === 'linux')('npm start', () => {
  it.each([
    ['its terminal closes (SIGHUP to the process group)', (child: ChildProcess) => process.kill(-(child.pid ?? 0), 'SIGHUP')],
    ['it is killed with kill -9', (child: ChildProcess) => process.kill(child.pid ?? 0, 'SIGKILL')],
  ])('stops the local host and Azurite when %s', async (_how, end) => {
    const taken = [];
    for (const port of AZURITE_PORTS) if (await answers(port)) taken.push(port);
    // Azurite's fixed ports must be free, or start.mjs would (rightly) use the storage already there.
    expect(taken, 'ports 10000-10002 are in use: stop the Azurite that holds them to run this test').toEqual([]);
    const port = await freePort();
    const { child, output } = await startNpmStart(port);
    await pollUntil('Azurite to answer', async () => ((await answers(10002)) ? true : undefined), 30_000, 100);
    const started = descendants(child.pid ?? 0);
    expect(started.length, output()).toBeGreaterThanOrEqual(4); // two leashes, the host, Azurite

    end(child);
    await pollUntil(`every process npm start started to end\n${output()}`, async () => (started.every((pid) => !alive(pid)) ? true : undefined), 30_000, 100);
    for (const p of [port, ...AZURITE_PORTS]) expect(await answers(p), `port ${p} still answers`).toBe(false);
  }, 120_000);
});
