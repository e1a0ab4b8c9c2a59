#!/usr/bin/env node
/**
 * Stages the deployment package: exactly what `azd deploy` uploads (azure.yaml's `dist`), and what
 * the test suites run on the real Functions host.
 *
 *   node scripts/stage-package.mjs                          → .deploy/ (azd's prepackage hook runs this)
 *   node scripts/stage-package.mjs --out <dir> --offline-extensions
 *
 * The package holds the compiled app (dist/src, without source maps), package.json, host.json, ui/
 * and the production dependencies only, copied from this checkout's node_modules as
 * package-lock.json lists them (no devDependency, no network). Run `npm run build` first.
 *
 * --offline-extensions is for test runs on a host that cannot download the extension bundle: it adds
 * bin/ with the extensions restored from NuGet (extensions.csproj, `dotnet build`, cached under
 * .realhost/extensions) and drops `extensionBundle` from the staged host.json, which makes the host
 * load them from bin/ — what `func extensions install` sets up. Never used for a deployment.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  console.error(`stage-package: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { out: join(ROOT, '.deploy'), offlineExtensions: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') options.out = resolve(argv[++i] ?? fail('--out needs a directory'));
    else if (argv[i] === '--offline-extensions') options.offlineExtensions = true;
    else fail(`unknown argument ${argv[i]}`);
  }
  return options;
}

/** The lock file's production packages: every `node_modules/...` entry not marked dev-only. */
function productionPackages(lock) {
  return Object.entries(lock.packages ?? {})
    .filter(([key, entry]) => key.startsWith('node_modules/') && entry.dev !== true && entry.link !== true)
    .map(([key]) => key);
}

function copyProductionModules(out) {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  let copied = 0;
  for (const key of productionPackages(lock)) {
    // Nested packages come with their parent's folder (a production package's own dependencies).
    if (key.includes('/node_modules/')) continue;
    const from = join(ROOT, key);
    // Optional packages for other platforms are in the lock but not installed here.
    if (!existsSync(from)) continue;
    cpSync(from, join(out, key), { recursive: true, dereference: false });
    copied++;
  }
  return copied;
}

function stageHostJson(out, offlineExtensions) {
  const hostJson = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8'));
  if (offlineExtensions) delete hostJson.extensionBundle;
  writeFileSync(join(out, 'host.json'), `${JSON.stringify(hostJson, null, 2)}\n`);
}

/** Restores the extensions once per extensions.csproj content; later stagings copy the cache. */
function restoreExtensions() {
  const project = join(ROOT, 'extensions.csproj');
  const cache = join(ROOT, '.realhost', 'extensions');
  const stamp = join(cache, 'extensions.csproj');
  const bin = join(cache, 'bin');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === readFileSync(project, 'utf8') && existsSync(join(bin, 'extensions.json'))) return bin;
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  const build = spawnSync('dotnet', ['build', project, '-c', 'Release', '-o', bin, '-nologo', '-v', 'quiet', `-p:BaseIntermediateOutputPath=${join(cache, 'obj')}${sep}`, `-p:BaseOutputPath=${join(cache, 'out')}${sep}`], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1' },
  });
  if (build.error?.code === 'ENOENT') fail('the .NET SDK (dotnet) is needed to restore the Functions extensions from NuGet.');
  if (build.status !== 0) fail(`restoring the Functions extensions failed:\n${build.stdout}\n${build.stderr}`);
  writeFileSync(stamp, readFileSync(project, 'utf8'));
  return bin;
}

function sizeOf(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((total, name) => total + sizeOf(join(path, name)), 0);
}

function main() {
  const { out, offlineExtensions } = parseArgs(process.argv.slice(2));
  const compiled = join(ROOT, 'dist', 'src');
  if (!existsSync(join(compiled, 'index.js'))) fail('dist/src is missing: run `npm run build` first.');
  // Only a folder this script staged before (or an empty one) is replaced.
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, '.staged-package'))) {
    fail(`refusing to replace ${out}: it is not a folder this script staged.`);
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, '.staged-package'), 'Staged by scripts/stage-package.mjs; replaced on every run.\n');

  cpSync(compiled, join(out, 'dist', 'src'), { recursive: true, filter: (path) => !path.endsWith('.map') });
  cpSync(join(ROOT, 'ui'), join(out, 'ui'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(out, 'package.json'));
  stageHostJson(out, offlineExtensions);
  const packages = copyProductionModules(out);
  if (offlineExtensions) cpSync(restoreExtensions(), join(out, 'bin'), { recursive: true });

  const megabytes = (sizeOf(out) / 1024 / 1024).toFixed(1);
  console.log(`stage-package: ${relative(ROOT, out) || out}: ${packages} production packages, ${megabytes} MB${offlineExtensions ? ', extensions in bin/' : ''}`);
}

main();
