/**
 * Splits long strings across table properties. A string property holds at most 64 KiB
 * (32K UTF-16 units) and a row at most 1 MiB, so state and large inputs are cut into chunks of
 * 32,000 units — never between the two halves of a surrogate pair, which would corrupt the text —
 * and spread over numbered properties (and, for state and outboxes, over several rows).
 */
export const CHUNK_CHARS = 32_000;
/** Chunks per row: 14 x 64 KB stays under the 1 MiB row limit with room for the other properties. */
export const CHUNKS_PER_ROW = 14;
/** The state header row also carries metadata (sources map, ...), so it holds fewer chunks. */
export const CHUNKS_IN_HEADER_ROW = 10;

export function splitIntoChunks(text: string, maxChars = CHUNK_CHARS): string[] {
  const chunks: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + maxChars, text.length);
    if (end < text.length) {
      const last = text.charCodeAt(end - 1);
      if (last >= 0xd800 && last <= 0xdbff) end--; // keep a high surrogate with its low half
    }
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}

export function chunkProperty(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(3, '0')}`;
}

/** Reads `count` chunk properties written by writeChunkProperties; undefined if one is missing. */
export function readChunkProperties(row: Record<string, unknown>, prefix: string, count: number): string | undefined {
  let text = '';
  for (let i = 0; i < count; i++) {
    const value = row[chunkProperty(prefix, i)];
    if (typeof value !== 'string') return undefined;
    text += value;
  }
  return text;
}

export function writeChunkProperties(target: Record<string, unknown>, prefix: string, chunks: string[]): void {
  chunks.forEach((chunk, i) => {
    target[chunkProperty(prefix, i)] = chunk;
  });
}

/** Groups chunks into rows: the first row takes `firstRowCapacity`, the rest `CHUNKS_PER_ROW` each. */
export function groupChunks(chunks: string[], firstRowCapacity: number): string[][] {
  const rows: string[][] = [chunks.slice(0, firstRowCapacity)];
  for (let i = firstRowCapacity; i < chunks.length; i += CHUNKS_PER_ROW) rows.push(chunks.slice(i, i + CHUNKS_PER_ROW));
  return rows;
}
