#!/usr/bin/env node
/**
 * Runs one command on a leash held by the process that started this one (scripts/start.mjs):
 *
 *   node scripts/leash.mjs <command> [args...]     (stdin must be a pipe from the parent)
 *
 * When the parent ends in any way — a normal stop, a closed terminal, kill -9 — its end of the stdin
 * pipe closes, and the command is stopped (SIGTERM, SIGKILL after the grace period). SIGTERM, SIGINT
 * and SIGHUP sent to the leash are passed on. The leash exits with the command's status. Node has no
 * parent-death signal, and third-party children (Azurite, Core Tools) cannot be taught to watch
 * their parent, hence this small process between them.
 */
import { spawn } from 'node:child_process';

const GRACE_MS = Number(process.env.LEASH_GRACE_MS ?? 15_000);
const [command, ...args] = process.argv.slice(2);
if (command === undefined) {
  process.stderr.write('usage: node scripts/leash.mjs <command> [args...]\n');
  process.exit(2);
}

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], shell: process.platform === 'win32' && command.endsWith('.cmd') });
let forced;
const stop = (signal) => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  forced ??= setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
};

child.once('error', (err) => {
  process.stderr.write(`could not start ${command}: ${err.message}\n`);
  process.exit(127);
});
child.once('exit', (code, signal) => {
  clearTimeout(forced);
  process.exit(code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1));
});

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => stop(signal === 'SIGHUP' ? 'SIGTERM' : signal));
// The parent never writes; end or error of the pipe means it is gone.
process.stdin.on('data', () => {});
process.stdin.once('end', () => stop('SIGTERM'));
process.stdin.once('error', () => stop('SIGTERM'));
