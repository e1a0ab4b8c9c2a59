/**
 * Reads the app's JSON files the way the Functions host does: host.json and local.settings.json may
 * carry // and /* *\/ comments and trailing commas (the host parses them with JSON.NET), so strip
 * those outside strings before JSON.parse.
 */
import { readFileSync } from 'node:fs';

export function parseJsonWithComments(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    const next = text[i + 1];
    if (inString) {
      out += ch;
      if (ch === '\\') {
        out += next ?? '';
        i++;
      } else if (ch === '"') {
        inString = false;
      }
    } else if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (ch === '/' && next === '*') {
      i += 2;
      while (i < text.length && !(text[i] === '*' && text[i + 1] === '/')) i++;
      i++;
    } else {
      out += ch;
    }
  }
  // Trailing commas before } or ] (outside strings, which the pass above already preserved verbatim).
  const withoutTrailingCommas = out.replace(/,(\s*[}\]])/g, (_match, closing: string) => closing);
  return JSON.parse(withoutTrailingCommas.replace(/^\uFEFF/, ''));
}

/** undefined when the file does not exist; throws with the file name when it is not valid JSON. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return parseJsonWithComments(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
