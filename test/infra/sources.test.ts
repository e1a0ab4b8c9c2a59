/**
 * Checks on the infra sources themselves, which need no Bicep CLI and so run everywhere:
 * modules are local files (registry modules cannot be restored offline and escape this repo's
 * checks), and azure.yaml wires the service and the postprovision hook the way the README's "Deploy to Azure" says.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INFRA, ROOT } from './compiled';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const bicepFiles = filesUnder(INFRA).filter((path) => path.endsWith('.bicep'));

/** `module <name> '<reference>'` declarations, with the file they are in. */
const moduleReferences = bicepFiles.flatMap((file) =>
  [...readFileSync(file, 'utf8').matchAll(/^\s*module\s+\w+\s+'([^']+)'/gm)].map((m) => ({ file, reference: m[1] ?? '' })),
);

describe('infra sources', () => {
  it('has main.bicep and modules under infra/app', () => {
    expect(bicepFiles.map((f) => relative(ROOT, f)).sort()).toContain('infra/main.bicep');
    expect(moduleReferences.length).toBeGreaterThanOrEqual(8);
  });

  it('uses no registry or template-spec modules (br:, br/, ts:, ts/)', () => {
    const registry = bicepFiles.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .map((line, index) => ({ line, where: `${relative(ROOT, file)}:${index + 1}` }))
        .filter(({ line }) => /'(br|ts)[:/]/.test(line)),
    );
    expect(registry).toEqual([]);
  });

  it('references only local module files that exist inside infra/', () => {
    for (const { file, reference } of moduleReferences) {
      const target = resolve(dirname(file), reference);
      expect(reference, `${relative(ROOT, file)} -> ${reference}`).toMatch(/^(\.\/)?[\w./-]+\.bicep$/);
      expect(existsSync(target), `${relative(ROOT, file)} -> ${reference}`).toBe(true);
      expect(relative(INFRA, target).startsWith('..'), `${reference} leaves infra/`).toBe(false);
    }
  });

  it('never asks for keys in Bicep (listKeys, connection strings with AccountKey)', () => {
    const offending = bicepFiles.filter((file) => /\blist[A-Za-z]*\(|\.list[A-Za-z]*\(|AccountKey=/i.test(readFileSync(file, 'utf8')));
    expect(offending.map((f) => relative(ROOT, f))).toEqual([]);
  });
});

describe('azure.yaml', () => {
  const yaml = readFileSync(join(ROOT, 'azure.yaml'), 'utf8');
  // The significant lines, without comments, so the checks read like the file.
  const lines = yaml
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trimEnd())
    .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));

  function block(header: string): string[] {
    const start = lines.indexOf(header);
    if (start < 0) return [];
    const indent = header.length - header.trimStart().length;
    const body: string[] = [];
    for (const line of lines.slice(start + 1)) {
      if (line.length - line.trimStart().length <= indent) break;
      body.push(line);
    }
    return body;
  }

  it('deploys this project as the TypeScript function app service "api"', () => {
    expect(lines).toContain('services:');
    expect(block('  api:')).toEqual(expect.arrayContaining(['    project: .', '    language: ts', '    host: function']));
  });

  it('runs the postprovision hook on POSIX (sh) and Windows (pwsh), and both scripts exist', () => {
    const hook = block('  postprovision:');
    expect(hook).toEqual([
      '    posix:',
      '      shell: sh',
      '      run: ./infra/hooks/postprovision.sh',
      '    windows:',
      '      shell: pwsh',
      '      run: ./infra/hooks/postprovision.ps1',
    ]);
    expect(existsSync(join(ROOT, 'infra/hooks/postprovision.ps1'))).toBe(true);
    // azd runs POSIX hooks as files, so the executable bit must be in the repo.
    expect(statSync(join(ROOT, 'infra/hooks/postprovision.sh')).mode & 0o111).not.toBe(0);
  });
});
