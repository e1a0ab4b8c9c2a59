/**
 * Expands package.json `main` the way the worker's globby call does for the patterns apps use:
 * brace alternatives (`{index.js,functions/*.js}`), `*`, `?`, `[...]` and `**` segments. Dot files
 * are only matched by patterns that name the dot. Returns paths relative to `cwd`, with `/`,
 * alternatives in pattern order and files sorted within each alternative.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export function expandBraces(pattern: string): string[] {
  let depth = 0;
  let open = -1;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '{') {
      if (depth === 0) open = i;
      depth++;
    } else if (ch === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        const alternatives = splitTopLevel(pattern.slice(open + 1, i));
        if (alternatives.length < 2) continue; // "{x}" is a literal
        const before = pattern.slice(0, open);
        const after = pattern.slice(i + 1);
        return alternatives.flatMap((alternative) => expandBraces(before + alternative + after));
      }
    }
  }
  return [pattern];
}

function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of body) {
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
      continue;
    }
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    current += ch;
  }
  parts.push(current);
  return parts;
}

function hasMagic(segment: string): boolean {
  return /[*?[]/.test(segment);
}

function segmentToRegExp(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i] ?? '';
    if (ch === '*') source += '[^/]*';
    else if (ch === '?') source += '[^/]';
    else if (ch === '[') {
      const close = segment.indexOf(']', i + 1);
      if (close === -1) {
        source += '\\[';
      } else {
        const set = segment.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
        source += `[${set}]`;
        i = close;
      }
    } else source += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

function listDirectory(dir: string): { name: string; isDirectory: boolean }[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).map((entry) => ({ name: entry.name, isDirectory: entry.isDirectory() }));
  } catch {
    return [];
  }
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function walk(cwd: string, relative: string, segments: string[], index: number, out: Set<string>): void {
  const absolute = path.join(cwd, relative);
  if (index === segments.length) {
    if (isFile(absolute)) out.add(relative);
    return;
  }
  const segment = segments[index] ?? '';
  if (segment === '**') {
    walk(cwd, relative, segments, index + 1, out);
    for (const entry of listDirectory(absolute)) {
      if (entry.isDirectory && !entry.name.startsWith('.')) {
        walk(cwd, joinRelative(relative, entry.name), segments, index, out);
      }
    }
    return;
  }
  if (!hasMagic(segment)) {
    walk(cwd, joinRelative(relative, segment), segments, index + 1, out);
    return;
  }
  const matcher = segmentToRegExp(segment);
  const entries = listDirectory(absolute)
    .filter((entry) => matcher.test(entry.name) && (segment.startsWith('.') || !entry.name.startsWith('.')))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    walk(cwd, joinRelative(relative, entry.name), segments, index + 1, out);
  }
}

function joinRelative(relative: string, name: string): string {
  return relative === '' ? name : `${relative}/${name}`;
}

export function globFiles(pattern: string, cwd: string): string[] {
  const results: string[] = [];
  const seen = new Set<string>();
  for (const alternative of expandBraces(pattern.replace(/\\/g, '/'))) {
    const segments = alternative.split('/').filter((segment, i) => segment !== '' && !(segment === '.' && i === 0));
    const found = new Set<string>();
    walk(cwd, '', segments, 0, found);
    for (const file of [...found].sort()) {
      if (!seen.has(file)) {
        seen.add(file);
        results.push(file);
      }
    }
  }
  return results;
}
