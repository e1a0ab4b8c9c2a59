/** test.http, run headless with httpyac (the `npm run test:http` command) against the app on the runtime under test. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { REPO_ROOT } from '../support/host';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());

it('passes every request and assertion of test.http', async () => {
  // The file's own `@host` line wins over httpyac's --var, so run a copy that points at this host and,
  // where keys are enforced, sends the function key with every request (as a user on Azure would).
  const original = await readFile(path.join(REPO_ROOT, 'test.http'), 'utf8');
  expect(original).toMatch(/^@host = http:\/\/localhost:7071$/m);
  const keyHeaders = Object.entries(t.keyHeaders()).map(([name, value]) => `\n${name}: ${value}`).join('');
  const copy = original.replace(/^@host = .*$/m, `@host = ${t.host.url}`).replace(/^((?:GET|POST|PUT|DELETE) \{\{host\}\}.*)$/gm, `$1${keyHeaders}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'test-http-'));
  await writeFile(path.join(dir, 'test.http'), copy);
  const httpyac = path.join(REPO_ROOT, 'node_modules', '.bin', 'httpyac');
  const { stdout } = await promisify(execFile)(httpyac, ['send', 'test.http', '--all', '--bail', '-o', 'short'], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1' },
  });
  const summary = /(\d+) requests processed \((\d+) succeeded\)/.exec(stdout);
  expect(summary, stdout).not.toBeNull();
  expect(Number(summary![1])).toBeGreaterThanOrEqual(10);
  expect(summary![2]).toBe(summary![1]);
  expect(stdout).not.toMatch(/✖|failed/);
});
