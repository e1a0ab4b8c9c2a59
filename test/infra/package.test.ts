/**
 * The deployment package (scripts/stage-package.mjs): what azd uploads, and what the real-host suites
 * run. It must hold the compiled app and production dependencies only — no devDependency, no test,
 * TypeScript source, source map or local settings — and azure.yaml must deploy exactly that folder.
 * Needs `npm run build` first (npm test does it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './compiled';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

interface Lock {
  packages: Record<string, { dev?: boolean; version?: string }>;
}

let out: string;
let files: string[];
beforeAll(() => {
  out = join(mkdtempSync(join(tmpdir(), 'package-')), 'app');
  const staged = spawnSync(process.execPath, [join(ROOT, 'scripts', 'stage-package.mjs'), '--out', out], { cwd: ROOT, encoding: 'utf8' });
  expect(staged.status, `${staged.stdout}\n${staged.stderr}`).toBe(0);
  files = filesUnder(out).map((file) => relative(out, file));
}, 120_000);
afterAll(() => rmSync(join(out, '..'), { recursive: true, force: true }));

describe('the deployment package', () => {
  it('holds the compiled app, package.json, host.json (with the extension bundle) and ui/', () => {
    for (const file of ['package.json', 'host.json', 'ui/chat.html', 'dist/src/index.js', 'dist/src/functions/chats.js', 'dist/src/functions/chatEntity.js']) {
      expect(files, file).toContain(file);
    }
    const hostJson = JSON.parse(readFileSync(join(out, 'host.json'), 'utf8')) as Record<string, unknown>;
    expect(hostJson).toEqual(JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')));
    expect(hostJson['extensionBundle']).toBeDefined();
    expect(existsSync(join(out, 'bin'))).toBe(false);
  });

  it('holds no devDependency: every package in node_modules is a production one of the lock file', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lock;
    const devOnly = Object.entries(lock.packages).filter(([key, entry]) => key.startsWith('node_modules/') && entry.dev === true);
    expect(devOnly.length).toBeGreaterThan(100); // the check below has something to find
    const present = devOnly.map(([key]) => key).filter((key) => existsSync(join(out, key)));
    expect(present).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const name of Object.keys(manifest.devDependencies)) expect(existsSync(join(out, 'node_modules', name)), name).toBe(false);
    for (const name of Object.keys(manifest.dependencies)) expect(existsSync(join(out, 'node_modules', name, 'package.json')), name).toBe(true);
  });

  it('holds no test, TypeScript source, source map, local setting, local host or tooling file', () => {
    const appFiles = files.filter((file) => !file.startsWith('node_modules/'));
    const offending = appFiles.filter((file) =>
      /(^|\/)(test|devhost|scripts|infra|src)\/|\.ts$|\.map$|local\.settings|tsconfig|vitest|eslint|\.http$|extensions\.csproj/.test(file.replace(/^dist\/src\//, '')),
    );
    expect(offending).toEqual([]);
    expect(appFiles.filter((file) => !/^(package\.json|host\.json|\.staged-package|ui\/.*|dist\/src\/.*\.js)$/.test(file))).toEqual([]);
  });

  it('is what azure.yaml deploys: the service packages .deploy, which its prepackage hook stages', () => {
    const yaml = readFileSync(join(ROOT, 'azure.yaml'), 'utf8');
    expect(yaml).toMatch(/^ {4}dist: \.deploy$/m);
    expect(yaml.match(/run: node scripts\/stage-package\.mjs$/gm)).toHaveLength(2); // posix and windows
  });
});
