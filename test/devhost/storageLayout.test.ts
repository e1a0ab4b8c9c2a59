// Unit tests of the pieces the storage layout and app loading rely on: chunking never splits a
// surrogate pair, partition keys round-trip any entity id, and package.json `main` globs expand.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupChunks, splitIntoChunks } from '../../devhost/durable/chunks';
import { fromPartitionKey, makeEntityId, partitionRangeForName, toPartitionKey, validateEntityId } from '../../devhost/durable/entityId';
import { parseFunctionTimeout } from '../../devhost/settings/duration';
import { parseJsonWithComments } from '../../devhost/settings/jsonFile';
import { entityTableName } from '../../devhost/storage/tableClient';
import { expandBraces, globFiles } from '../../devhost/worker/glob';

describe('chunks', () => {
  it('splits at the limit but never inside a surrogate pair', () => {
    const text = 'a'.repeat(9) + '\u{1F600}' + 'b'.repeat(20);
    const chunks = splitIntoChunks(text, 10);
    expect(chunks.join('')).toBe(text);
    expect(chunks[0]).toBe('a'.repeat(9));
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(10);
      expect(Buffer.from(chunk, 'utf8').toString('utf8')).toBe(chunk); // no lone surrogates
    }
  });

  it('groups chunks into rows of the given capacities', () => {
    const chunks = Array.from({ length: 40 }, (_, i) => String(i));
    const rows = groupChunks(chunks, 10);
    expect(rows.map((row) => row.length)).toEqual([10, 14, 14, 2]);
    expect(rows.flat()).toEqual(chunks);
    expect(groupChunks([], 10)).toEqual([[]]);
  });
});

describe('entity ids', () => {
  it('round-trips keys with characters table keys forbid', () => {
    for (const key of ['plain', 'a/b\\c#d?e', '100%', 'tab\there', 'ümlaut-😀', '%41']) {
      const id = makeEntityId('Chat', key);
      const partitionKey = toPartitionKey(id);
      expect(partitionKey).not.toMatch(/[/\\#?\t]/);
      expect(fromPartitionKey(partitionKey)).toEqual({ name: 'chat', key });
    }
  });

  it('keeps every key of a name inside that name\'s partition range', () => {
    const range = partitionRangeForName('chat');
    for (const key of ['a', '~~~', '\u{10FFFF}', '@', ' ']) {
      const partitionKey = toPartitionKey(makeEntityId('chat', key));
      expect(partitionKey >= range.from && partitionKey < range.to).toBe(true);
    }
    expect(toPartitionKey(makeEntityId('chat2', 'a')) < range.from || toPartitionKey(makeEntityId('chat2', 'a')) >= range.to).toBe(true);
  });

  it('validates names and keys', () => {
    expect(validateEntityId('chat', 'k')).toBeUndefined();
    expect(validateEntityId('', 'k')).toMatch(/name/);
    expect(validateEntityId('a@b', 'k')).toMatch(/@/);
    expect(validateEntityId('chat', 'x'.repeat(600))).toMatch(/too long/);
  });
});

describe('settings', () => {
  it('derives a valid table name from any task hub name', () => {
    expect(entityTableName('DurableChat')).toBe('DurableChatDevhostEntities');
    expect(entityTableName('1-hub_x')).toBe('h1hubxDevhostEntities');
    expect(entityTableName('h'.repeat(100))).toHaveLength(63);
  });

  it('parses functionTimeout values', () => {
    expect(parseFunctionTimeout('00:05:00')).toBe(300_000);
    expect(parseFunctionTimeout('1.00:00:01')).toBe(86_401_000);
    expect(parseFunctionTimeout('-1')).toBeUndefined();
    expect(() => parseFunctionTimeout('5 minutes')).toThrow();
  });

  it('reads JSON with comments and trailing commas, leaving strings alone', () => {
    expect(parseJsonWithComments('{ // c\n "a": "http://x/*y*/", /* z */ "b": [1,2,], }')).toEqual({ a: 'http://x/*y*/', b: [1, 2] });
  });
});

describe('package.json main globs', () => {
  it('expands braces in order', () => {
    expect(expandBraces('dist/src/{index.js,functions/*.js}')).toEqual(['dist/src/index.js', 'dist/src/functions/*.js']);
    expect(expandBraces('a{b,c{d,e}}f')).toEqual(['abf', 'acdf', 'acef']);
  });

  it('finds files like the worker does', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'devhost-glob-'));
    for (const file of ['dist/src/index.js', 'dist/src/functions/b.js', 'dist/src/functions/a.js', 'dist/src/functions/a.js.map', 'dist/src/functions/nested/c.js', 'dist/src/functions/.hidden.js']) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), '');
    }
    expect(globFiles('dist/src/{index.js,functions/*.js}', root)).toEqual(['dist/src/index.js', 'dist/src/functions/a.js', 'dist/src/functions/b.js']);
    expect(globFiles('dist/**/*.js', root)).toContain('dist/src/functions/nested/c.js');
    expect(globFiles('dist/src/missing.js', root)).toEqual([]);
  });
});
