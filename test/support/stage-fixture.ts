/**
 * Stages a plain-JS fixture app (test/fixtures/...) for the real Functions host: a copy under
 * .realhost/fixtures/<name> with the extensions in bin/ (the host build cannot download the bundle)
 * and a host.json without `extensionBundle`. The copy sits inside the repository, so the app's
 * `require`s resolve from the repository's node_modules, as they do on the local host.
 *
 * The extensions come from the cache scripts/stage-package.mjs keeps in .realhost/extensions; when
 * that is missing, one staging of the deployment package into a scratch folder fills it.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './host';

const EXTENSIONS_BIN = path.join(REPO_ROOT, '.realhost', 'extensions', 'bin');

function ensureExtensions(): string {
  if (existsSync(path.join(EXTENSIONS_BIN, 'extensions.json'))) return EXTENSIONS_BIN;
  mkdirSync(path.join(REPO_ROOT, '.realhost'), { recursive: true });
  const scratch = mkdtempSync(path.join(REPO_ROOT, '.realhost', 'scratch-'));
  try {
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'stage-package.mjs'), '--out', scratch, '--offline-extensions'], { cwd: REPO_ROOT, stdio: 'inherit' });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return EXTENSIONS_BIN;
}

/** Returns the staged folder (replaced on every call). */
export function stageFixtureForRealHost(fixtureDir: string): string {
  const source = path.resolve(REPO_ROOT, fixtureDir);
  const out = path.join(REPO_ROOT, '.realhost', 'fixtures', path.basename(source));
  rmSync(out, { recursive: true, force: true });
  cpSync(source, out, { recursive: true });
  const hostJsonFile = path.join(out, 'host.json');
  const hostJson = JSON.parse(readFileSync(hostJsonFile, 'utf8')) as Record<string, unknown>;
  delete hostJson['extensionBundle'];
  writeFileSync(hostJsonFile, JSON.stringify(hostJson, null, 2));
  cpSync(ensureExtensions(), path.join(out, 'bin'), { recursive: true });
  return out;
}
