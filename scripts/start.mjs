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
 *    stops them instead of leaving them holding the ports.
 *
 * Options: --port <n> (also PORT) is forwarded; other arguments go to the runtime as they are.
 */
import { spawn } from 'node:child_process';
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

const LEASH = path.join(root, 'scripts', 'leash.mjs');

/**
 * Children get their own process group, so a terminal's Ctrl-C or hang-up reaches only us and we stop
 * them in order; the leash's stdin pipe ends when we do, however we end.
 */
function run(command, args, label) {
  const child = spawn(process.execPath, [LEASH, command, ...args], {
    cwd: root,
    stdio: ['pipe', 'inherit', 'inherit'],
    detached: process.platform !== 'win32',
  });
  child.label = label;
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (err) => fail(`could not start ${label}: ${err.message}`));
  return child;
}

async function stopChild(child, graceMs) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
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
        runtime.kill('SIGKILL');
        azurite?.kill('SIGKILL');
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
