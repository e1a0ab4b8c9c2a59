// `npm run check:infra`: compile every Bicep file under infra/ with a pinned Bicep CLI and fail on
// any error or warning (compiler and linter alike), then let Bicep's offline deployment engine
// predict the resources for a few parameter sets so test/infra/*.test.ts can check what would
// really be deployed, not just what the source looks like.
//
// Outputs (all under the git-ignored .bicep/):
//   out/main.json               ARM template compiled from infra/main.bicep (modules inlined)
//   out/app/*.json              each module compiled on its own
//   out/snapshot-<name>.json    `bicep snapshot` of main.bicep for scenario <name> (see SCENARIOS)
//   out/manifest.json           Bicep version, a hash of every infra file, the scenarios' parameters
//
// Where the CLI comes from, in order:
//   1. NuGet package Azure.Bicep.CommandLine.<rid> (pinned below), restored with `dotnet restore`
//      into .bicep/packages. Same version on every machine, so a clean CI clone and a laptop see
//      the same diagnostics; no network access except the NuGet feed the machine already uses.
//   2. `bicep` on PATH, or the copy `az bicep install` keeps in ~/.azure/bin (a different version
//      may report different diagnostics; the script says which it used).
// Where neither can be had (no .NET SDK, no Bicep, no az) the check is skipped with a notice and
// the infra tests skip themselves, saying why. If .NET is there but the restore fails, that is a
// failure, not a skip: a CI image that should check the infra must not silently stop doing so.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const BICEP_VERSION = '0.49.2';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const INFRA = join(ROOT, 'infra');
const WORK = join(ROOT, '.bicep');
const OUT = join(WORK, 'out');
const PACKAGES = join(WORK, 'packages');

// Parameter sets the tests inspect. Ids are fixed so predicted names and GUIDs are reproducible.
const SUBSCRIPTION_ID = '00000000-0000-0000-0000-00000000c0de';
const TENANT_ID = '00000000-0000-0000-0000-0000000ad000';
const DEVELOPER_ID = '11111111-2222-3333-4444-555555555555';
const AUTH_CLIENT_ID = '99999999-8888-7777-6666-555555555555';
const SCENARIOS = {
  // What `azd up` does by default for a signed-in developer.
  default: { environmentName: 'ci', location: 'eastus2', principalId: DEVELOPER_ID },
  // VNET_ENABLED=true: private endpoints, public network access off.
  vnet: { environmentName: 'ci', location: 'eastus2', principalId: DEVELOPER_ID, vnetEnabled: true },
  // No AZURE_PRINCIPAL_ID (e.g. a pipeline that does not set one): the app must still get its roles.
  'no-principal': { environmentName: 'ci', location: 'eastus2', principalId: '' },
  // AUTH_CLIENT_ID set: App Service Authentication with Entra ID, chats per signed-in user.
  auth: { environmentName: 'ci', location: 'eastus2', principalId: DEVELOPER_ID, authClientId: AUTH_CLIENT_ID },
};

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (message) => console.log(`check:infra: ${message}`);

function fail(message) {
  console.error(`check:infra: FAILED: ${message}`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  return {
    ok: !result.error && result.status === 0,
    missing: result.error?.code === 'ENOENT',
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    error: result.error,
  };
}

// Like run(), without blocking: the snapshots are independent, so they run side by side.
function runAsync(command, args) {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('error', (error) => resolvePromise({ ok: false, status: null, stdout, stderr, error }));
    child.on('close', (status) => resolvePromise({ ok: status === 0, status, stdout, stderr, error: undefined }));
  });
}

// NuGet runtime id of the Bicep CLI package for this machine, or null where none is published.
function runtimeId() {
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (!arch) return null;
  if (process.platform === 'win32') return `win-${arch}`;
  if (process.platform === 'darwin') return `osx-${arch}`;
  if (process.platform === 'linux') {
    // musl (Alpine) needs its own build; glibc's report carries a glibc version.
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
    if (!glibc) return arch === 'x64' ? 'linux-musl-x64' : null;
    return `linux-${arch}`;
  }
  return null;
}

function bicepVersionOf(executable) {
  const result = run(executable, ['--version']);
  if (!result.ok) return null;
  return /Bicep CLI version (\S+)/.exec(result.stdout)?.[1] ?? null;
}

function restoreFromNuGet(rid) {
  const executableName = process.platform === 'win32' ? 'bicep.exe' : 'bicep';
  const packageDir = join(PACKAGES, `azure.bicep.commandline.${rid}`, BICEP_VERSION);
  const executable = join(packageDir, 'tools', executableName);
  if (existsSync(executable)) return { executable, restored: false };

  const dotnet = run('dotnet', ['--version']);
  if (!dotnet.ok) return null;
  const sdkMajor = /^(\d+)\./.exec(dotnet.stdout.trim())?.[1];
  if (!sdkMajor) fail(`could not read the .NET SDK version from "${dotnet.stdout.trim()}"`);

  // A project that only downloads the package: nothing is built, nothing is referenced.
  const projectDir = join(WORK, 'restore');
  mkdirSync(projectDir, { recursive: true });
  const project = join(projectDir, 'restore.csproj');
  writeFileSync(
    project,
    [
      '<!-- Generated by scripts/check-infra.mjs: downloads the pinned Bicep CLI from NuGet. -->',
      '<Project Sdk="Microsoft.NET.Sdk">',
      '  <PropertyGroup>',
      `    <TargetFramework>net${sdkMajor}.0</TargetFramework>`,
      '  </PropertyGroup>',
      '  <ItemGroup>',
      `    <PackageDownload Include="Azure.Bicep.CommandLine.${rid}" Version="[${BICEP_VERSION}]" />`,
      '  </ItemGroup>',
      '</Project>',
      '',
    ].join('\n'),
  );
  log(`restoring Azure.Bicep.CommandLine.${rid} ${BICEP_VERSION} from NuGet into .bicep/packages ...`);
  const restoreStarted = Date.now();
  const restore = run('dotnet', ['restore', project, '--packages', PACKAGES, '--nologo', '--verbosity', 'quiet'], {
    env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1', DOTNET_SKIP_FIRST_TIME_EXPERIENCE: '1' },
  });
  if (!restore.ok) {
    fail(
      `dotnet restore of Azure.Bicep.CommandLine.${rid} ${BICEP_VERSION} failed (exit ${restore.status}).\n` +
        `${restore.stdout}${restore.stderr}\n` +
        'Is the NuGet feed reachable? (Put `bicep` on PATH to check offline.)',
    );
  }
  if (!existsSync(executable)) fail(`the restored package has no ${relative(ROOT, executable)}`);
  // NuGet does not keep the executable bit.
  if (process.platform !== 'win32') chmodSync(executable, 0o755);
  log(`restored in ${((Date.now() - restoreStarted) / 1000).toFixed(1)}s`);
  return { executable, restored: true };
}

function findBicep() {
  const rid = runtimeId();
  if (rid) {
    const fromNuGet = restoreFromNuGet(rid);
    if (fromNuGet) {
      const version = bicepVersionOf(fromNuGet.executable);
      if (!version) {
        const attempt = run(fromNuGet.executable, ['--version']);
        fail(
          `${relative(ROOT, fromNuGet.executable)} does not run (try deleting .bicep/ and re-running):\n` +
            `${attempt.stderr || attempt.stdout || String(attempt.error)}`,
        );
      }
      return { executable: fromNuGet.executable, version, source: `NuGet Azure.Bicep.CommandLine.${rid}` };
    }
  }
  const onPath = bicepVersionOf('bicep');
  if (onPath) return { executable: 'bicep', version: onPath, source: 'bicep on PATH' };
  const azInstalled = join(homedir(), '.azure', 'bin', process.platform === 'win32' ? 'bicep.exe' : 'bicep');
  if (!existsSync(azInstalled) && run('az', ['version']).ok) run('az', ['bicep', 'install']);
  const fromAz = existsSync(azInstalled) ? bicepVersionOf(azInstalled) : null;
  if (fromAz) return { executable: azInstalled, version: fromAz, source: 'az bicep (~/.azure/bin)' };
  return null;
}

// Bicep prints one line per diagnostic: `<file>(<line>,<col>) : <Level> <code>: <message>`.
const DIAGNOSTIC = /^(.+)\((\d+),(\d+)\) : (Error|Warning|Info) ([^:\s]+): (.*)$/;

// Returns the problems in a Bicep run's stderr; Info diagnostics are printed but allowed.
function diagnosticsOf(stderr) {
  const problems = [];
  const seen = new Set();
  for (const raw of stderr.split(/\r?\n/)) {
    const line = raw.trimEnd();
    if (line === '' || seen.has(line)) continue;
    seen.add(line);
    const match = DIAGNOSTIC.exec(line);
    if (!match) {
      // Anything else the compiler says is unexpected; failing keeps the "zero output" bar honest.
      problems.push(`unexpected compiler output: ${line}`);
      continue;
    }
    const [, file, lineNumber, column, level, code, message] = match;
    const where = `${relative(ROOT, file)}:${lineNumber}:${column}`;
    if (level === 'Info') log(`info ${code} at ${where}: ${message}`);
    else problems.push(`${level} ${code} at ${where}: ${message}`);
  }
  return problems;
}

function filesUnder(dir) {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? filesUnder(path) : [path];
    })
    .sort();
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function bicepparamLiteral(value) {
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  return `'${String(value).replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

// ---------------------------------------------------------------------------------------------

// Never leave a previous run's output behind: tests must not pass against a stale or skipped build.
rmSync(OUT, { recursive: true, force: true });

const bicep = findBicep();
if (!bicep) {
  console.log(
    'check:infra: SKIPPED: no Bicep CLI available (no .NET SDK to restore it from NuGet, no `bicep` on PATH, no `az`).\n' +
      '  infra/ was NOT compiled and test/infra will skip. Install the .NET SDK (8 or later) or the Bicep CLI to check it.',
  );
  process.exit(0);
}
log(`Bicep CLI ${bicep.version} (${bicep.source})`);
if (bicep.version !== BICEP_VERSION) {
  log(`note: CI pins ${BICEP_VERSION}; diagnostics from ${bicep.version} may differ.`);
}

const sources = filesUnder(INFRA).filter((path) => path.endsWith('.bicep'));
if (!sources.includes(join(INFRA, 'main.bicep'))) fail('infra/main.bicep is missing');

// One compiler process for all files. --no-restore: modules must be local files, so a registry
// reference (br:, ts:) fails here instead of reaching for the network.
mkdirSync(OUT, { recursive: true });
const build = run(bicep.executable, ['build', '--pattern', 'infra/**/*.bicep', '--outdir', OUT, '--no-restore']);
const buildProblems = diagnosticsOf(build.stderr);
if (!build.ok || buildProblems.length > 0) {
  fail(
    `bicep build reported ${buildProblems.length} problem(s)${build.ok ? '' : ` and exited with ${build.status}`}:\n  ` +
      (buildProblems.length > 0 ? buildProblems.join('\n  ') : build.stderr || String(build.error)),
  );
}
for (const source of sources) {
  const compiled = join(OUT, relative(INFRA, source)).replace(/\.bicep$/, '.json');
  if (!existsSync(compiled)) fail(`${relative(ROOT, source)} compiled to nothing (expected ${relative(ROOT, compiled)})`);
}
log(`compiled ${sources.length} Bicep files with no errors or warnings (${elapsed()})`);

// Predicted deployments. `bicep snapshot` evaluates the template with the ARM engine offline
// (real uniqueString/guid values; runtime-only values stay as reference() expressions).
const snapshotDir = join(WORK, 'snapshots');
rmSync(snapshotDir, { recursive: true, force: true });
mkdirSync(snapshotDir, { recursive: true });
const usingPath = relative(snapshotDir, join(INFRA, 'main.bicep')).split(sep).join('/');
const snapshots = {};
await Promise.all(
  Object.entries(SCENARIOS).map(async ([name, parameters]) => {
    const paramFile = join(snapshotDir, `${name}.bicepparam`);
    writeFileSync(
      paramFile,
      [`using '${usingPath}'`, ...Object.entries(parameters).map(([key, value]) => `param ${key} = ${bicepparamLiteral(value)}`), ''].join('\n'),
    );
    const snapshot = await runAsync(bicep.executable, [
      'snapshot', paramFile, '--mode', 'overwrite',
      '--subscription-id', SUBSCRIPTION_ID, '--tenant-id', TENANT_ID,
      '--location', parameters.location, '--deployment-name', `check-infra-${name}`,
    ]);
    const problems = diagnosticsOf(snapshot.stderr);
    const produced = join(snapshotDir, `${name}.snapshot.json`);
    if (!snapshot.ok || problems.length > 0 || !existsSync(produced)) {
      fail(`bicep snapshot for scenario "${name}" failed (exit ${snapshot.status}):\n  ${problems.join('\n  ') || snapshot.stderr || snapshot.stdout || String(snapshot.error)}`);
    }
    const content = JSON.parse(readFileSync(produced, 'utf8'));
    if (Array.isArray(content.diagnostics) && content.diagnostics.length > 0) {
      fail(`bicep snapshot for scenario "${name}" reported diagnostics:\n${JSON.stringify(content.diagnostics, null, 2)}`);
    }
    const file = `snapshot-${name}.json`;
    writeFileSync(join(OUT, file), JSON.stringify(content, null, 2));
    snapshots[name] = { file, parameters, subscriptionId: SUBSCRIPTION_ID, tenantId: TENANT_ID };
  }),
);
log(`predicted ${Object.keys(SCENARIOS).length} deployments (${Object.keys(SCENARIOS).join(', ')}) (${elapsed()})`);

// Hashes of the inputs let the tests refuse to judge output compiled from older sources.
const inputs = {};
for (const path of filesUnder(INFRA).filter((p) => /\.(bicep|json)$/.test(p))) inputs[relative(ROOT, path).split(sep).join('/')] = sha256(path);
writeFileSync(
  join(OUT, 'manifest.json'),
  JSON.stringify({ bicepVersion: bicep.version, bicepSource: bicep.source, inputs, snapshots }, null, 2),
);
log(`OK: wrote .bicep/out/main.json (${elapsed()} total)`);
