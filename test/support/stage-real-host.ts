/**
 * vitest globalSetup of the `real` project: stages the deployment package once per run, as the real
 * host runs it (test/support/runtimes.ts). A host build without network also gets the extensions in
 * bin/ and a host.json without `extensionBundle`; Core Tools download the bundle themselves.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './host';
import { realHostSetup, STAGED_APP } from './runtimes';

/** Stages into `out`: the suites' folder, or the bench's own (so a bench beside a test run cannot swap the app under it). */
export function stageRealHostPackage(out: string): void {
  const setup = realHostSetup();
  if (setup.kind === 'unavailable') throw new Error(`The real Functions host is not available: ${setup.reason}.`);
  const args = [path.join(REPO_ROOT, 'scripts', 'stage-package.mjs'), '--out', out, ...(setup.kind === 'host-build' ? ['--offline-extensions'] : [])];
  execFileSync(process.execPath, args, { cwd: REPO_ROOT, stdio: 'inherit' });
}

/** vitest's globalSetup entry (vitest passes its own context argument, so it is not `out`). */
export default function setup(): void {
  stageRealHostPackage(STAGED_APP);
}
