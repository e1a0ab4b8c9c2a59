#!/usr/bin/env node
/**
 * `npm start` (after `prestart` cleaned and built): runs the function app locally.
 *
 * 1. Creates local.settings.json from local.settings.sample.json if it is missing.
 * 2. If AzureWebJobsStorage is `UseDevelopmentStorage=true`, starts Azurite from node_modules
 *    (data in .azurite/) unless something already answers on its table port 127.0.0.1:10002.
 * 3. Runs `func start` when Azure Functions Core Tools are on PATH, else the project's local host
 *    (node dist/devhost/main.js), and says which, with the URL.
 * 4. Ctrl-C, SIGTERM or a closed terminal (SIGHUP) stops what it started: the app runtime first,
 *    then Azurite. Each child runs on a leash (scripts/leash.mjs), so even a kill -9 of this process
 *    stops them instead of leaving them holding the ports. A kill -9 of npm (or of the shell npm runs
 *    this through) stops them too: see watchLaunchers().
 *
 * Options: --port <n> (also PORT) is forwarded; other arguments go to the runtime as they are.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (message) => process.stdout.write(`npm start: ${message}\n`);
const fail = (message) => {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(1);
};

const AZURITE_PORTS = { blob: 10000, queue: 10001, table: 10002 };

function parseArgs(argv) {
  const forwarded = [];
  let port;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port') port = argv[++i];
    else if (arg.startsWith('--port=')) port = arg.slice('--port='.length);
    else forwarded.push(arg);
  }
  if (port !== undefined && !/^\d+$/.test(port)) fail(`--port needs a number, got "${port ?? ''}".`);
  return { port, forwarded };
}

function readLocalSettings() {
  const file = path.join(root, 'local.settings.json');
  if (!existsSync(file)) {
    const sample = path.join(root, 'local.settings.sample.json');
    if (!existsSync(sample)) fail('local.settings.json is missing and there is no local.settings.sample.json to copy.');
    copyFileSync(sample, file);
    say('created local.settings.json from local.settings.sample.json (edit it to configure the model).');
  }
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`local.settings.json is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function portAnswers(port, host = '127.0.0.1', timeoutMs = 400) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (answered) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function findOnPath(command) {
  const names = process.platform === 'win32' ? [`${command}.cmd`, `${command}.exe`, command] : [command];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    for (const name of names) {
      const candidate = path.join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/** Alive and not a zombie (on Linux, a killed process stays a zombie until its parent reaps it). */
function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err?.code === 'EPERM';
  }
  try {
    return !/^\S+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): kill(pid, 0) has to do
  }
}

/** The parent's pid and the command name of a process (Linux: /proc; macOS: ps), or undefined. */
function processInfo(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return { ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) };
  } catch {
    // not Linux, or gone
  }
  if (process.platform === 'win32') return undefined;
  try {
    const [ppid, ...name] = execFileSync('ps', ['-o', 'ppid=,comm=', '-p', String(pid)], { encoding: 'utf8' }).trim().split(/\s+/);
    return { ppid: Number(ppid), name: path.basename(name.join(' ')) };
  } catch {
    return undefined;
  }
}

/**
 * `npm start` is npm -> `sh -c "node scripts/start.mjs"` -> this process, and a kill -9 of npm (the pid
 * `npm start &` prints) or of that shell reaches neither the shell nor us: no signal, and our stdio is
 * npm's, not a pipe npm would close. So, when run as a package.json script, we note our parent and,
 * if it is the script shell, the package manager above it, and call onGone as soon as one of them is
 * gone (checked every 0.5 s). Windows: only the parent (cmd.exe) is watched. Run directly
 * (`node scripts/start.mjs`), nothing is watched: it then ends like any command, by signal.
 */
function watchLaunchers(onGone) {
  if (process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  const watched = [parent];
  const info = processInfo(parent);
  if (info !== undefined && info.ppid > 1 && /^(sh|bash|dash|zsh|ksh|ash|busybox)$/.test(info.name)) watched.push(info.ppid);
  const timer = setInterval(() => {
    if (process.ppid === parent && watched.every(alive)) return;
    clearInterval(timer);
    onGone();
  }, 500);
  timer.unref();
}

const LEASH = path.join(root, 'scripts', 'leash.mjs');

/**
 * Children get their own process group (the leash's, shared with its command), so a terminal's Ctrl-C
 * or hang-up reaches only us and we stop them in order; the leash's stdin pipe ends when we do,
 * however we end.
 */
function run(command, args, label) {
  const child = spawn(process.execPath, [LEASH, command, ...args], {
    cwd: root,
    stdio: ['pipe', 'inherit', 'inherit'],
    detached: process.platform !== 'win32',
  });
  child.label = label;
  child.exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      // A leash that was killed (kill -9) leaves its command running in the leash's process group.
      killGroup(child, 'SIGTERM');
      resolve({ code, signal });
    }),
  );
  child.once('error', (err) => fail(`could not start ${label}: ${err.message}`));
  return child;
}

/** SIGKILL of a leash alone would leave its command running: signal the leash's process group. */
function killGroup(child, signal) {
  try {
    if (process.platform === 'win32') child.kill(signal);
    else process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function stopChild(child, graceMs) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

async function startAzurite() {
  const answering = {};
  for (const [service, port] of Object.entries(AZURITE_PORTS)) answering[service] = await portAnswers(port);
  if (answering.table) {
    say('storage: something already answers on 127.0.0.1:10002 (Azurite?), using it.');
    return undefined;
  }
  const require = createRequire(import.meta.url);
  const azuriteDir = path.dirname(require.resolve('azurite/package.json'));
  const location = path.join(root, '.azurite');
  mkdirSync(location, { recursive: true });
  // All three services for func start; only the table service if the other ports are taken.
  const tableOnly = answering.blob || answering.queue;
  const script = path.join(azuriteDir, 'dist', 'src', tableOnly ? 'table/main.js' : 'azurite.js');
  const args = [script, '--location', location, '--silent', '--loose', '--skipApiVersionCheck', '--disableTelemetry'];
  say(`storage: starting Azurite${tableOnly ? ' (table service only)' : ''} from node_modules, data in .azurite/`);
  const azurite = run(process.execPath, args, 'Azurite');
  const deadline = Date.now() + 20_000;
  while (!(await portAnswers(AZURITE_PORTS.table))) {
    if (azurite.exitCode !== null || azurite.signalCode !== null) fail('Azurite exited during start-up (see its output above).');
    if (Date.now() > deadline) {
      await stopChild(azurite, 2_000);
      fail('Azurite did not open 127.0.0.1:10002 within 20 s.');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return azurite;
}

async function main() {
  const { port, forwarded } = parseArgs(process.argv.slice(2));
  const settings = readLocalSettings();
  const values = settings?.Values ?? {};
  const storage = process.env.AzureWebJobsStorage ?? values.AzureWebJobsStorage ?? '';
  const httpPort = port ?? process.env.PORT ?? settings?.Host?.LocalHttpPort ?? 7071;
  // Watched from the start, so a kill -9 of npm while Azurite starts counts too. Until the runtime runs,
  // exiting is enough: the leashes then stop what was started.
  let onLaunchersGone = () => fail('npm is gone: stopping.');
  watchLaunchers(() => onLaunchersGone());

  const azurite = /usedevelopmentstorage=true/i.test(storage) ? await startAzurite() : undefined;

  let runtime;
  const func = findOnPath('func');
  if (func !== undefined) {
    say(`Azure Functions Core Tools found (${func}): running func start.`);
    runtime = run(func, ['start', ...(port === undefined ? [] : ['--port', port]), ...forwarded], 'func start');
  } else {
    const hostMain = path.join(root, 'dist', 'devhost', 'main.js');
    if (!existsSync(hostMain)) {
      await stopChild(azurite, 5_000);
      fail('dist/devhost/main.js is missing; run `npm run build` (npm start does it in prestart).');
    }
    say('Azure Functions Core Tools (func) not found on PATH: running the local host (dist/devhost/main.js).');
    runtime = run(process.execPath, [hostMain, '--app-root', root, ...(port === undefined ? [] : ['--port', port]), ...forwarded], 'local host');
  }
  say(`app URL: http://localhost:${httpPort}`);

  let stopping = false;
  let lastSignalAt = 0;
  const shutdown = async (code) => {
    stopping = true;
    await stopChild(runtime, 15_000);
    await stopChild(azurite, 5_000);
    process.exit(code);
  };
  const onSignal = (signal) => {
    const now = Date.now();
    // npm forwards the terminal's SIGINT too, so the same Ctrl-C can arrive twice: ignore quick repeats.
    if (stopping) {
      if (now - lastSignalAt > 1_000) {
        say(`${signal} again: killing everything now.`);
        killGroup(runtime, 'SIGKILL');
        if (azurite) killGroup(azurite, 'SIGKILL');
        process.exit(1);
      }
      return;
    }
    lastSignalAt = now;
    say(`${signal}: stopping ${runtime.label}${azurite ? ' and Azurite' : ''}...`);
    void shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // After Ctrl-C npm and its shell may end before we do: that is no reason to hurry the stop.
  onLaunchersGone = () => stopping || onSignal('npm is gone');

  runtime.exited.then(async ({ code, signal }) => {
    if (stopping) return;
    say(`${runtime.label} exited (${signal ?? code}).`);
    await shutdown(code ?? 1);
  });
  azurite?.exited.then(({ code, signal }) => {
    if (!stopping) say(`warning: Azurite exited (${signal ?? code}); entity storage is unavailable.`);
  });
}

main().catch((err) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)));
