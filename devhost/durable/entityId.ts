/**
 * Entity identity as Durable Functions defines it: names are case-insensitive (the scheduler id is
 * `@${name.toLowerCase()}@${key}`), keys are not. The table partition key is the scheduler id
 * with the characters Azure Tables forbid in keys (/ \ # ? and control characters) and % itself
 * percent-encoded, so it round-trips exactly.
 */
export interface EntityId {
  /** Lower-cased, except in signals sent by entities (see EntityService's signal delivery). */
  name: string;
  key: string;
}

/** Azure Table keys are limited to 1 KiB (512 UTF-16 units). */
const MAX_PARTITION_KEY_CHARS = 512;

export function makeEntityId(name: string, key: string): EntityId {
  return { name: name.toLowerCase(), key };
}

/** An error message for an unusable id, or undefined when it is fine. */
export function validateEntityId(name: string, key: string): string | undefined {
  if (name === '') return 'The entity name is empty.';
  if (name.includes('@')) return 'An entity name cannot contain "@".';
  if (key === '') return 'The entity key is empty.';
  if (toPartitionKey(makeEntityId(name, key)).length > MAX_PARTITION_KEY_CHARS) return 'The entity key is too long.';
  return undefined;
}

export function schedulerId(id: EntityId): string {
  return `@${id.name}@${id.key}`;
}

function mustEscape(code: number): boolean {
  // '%' (our escape), '/', '\\', '#', '?' and the control ranges are not allowed in table keys.
  return code === 0x25 || code === 0x2f || code === 0x5c || code === 0x23 || code === 0x3f || code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}

/** A table key for any text (entity and orchestration partitions): forbidden characters and % percent-encoded. */
export function escapeTableKey(text: string): string {
  let encoded = '';
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    encoded += ch.length === 1 && mustEscape(code) ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : ch;
  }
  return encoded;
}

export function toPartitionKey(id: EntityId): string {
  return escapeTableKey(schedulerId(id));
}

export function fromPartitionKey(partitionKey: string): EntityId | undefined {
  const decoded = partitionKey.replace(/%([0-9A-F]{2})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  if (!decoded.startsWith('@')) return undefined;
  const at = decoded.indexOf('@', 1);
  if (at === -1) return undefined;
  return { name: decoded.slice(1, at), key: decoded.slice(at + 1) };
}

/** Partition-key range [from, to) holding every entity of one name. */
export function partitionRangeForName(name: string): { from: string; to: string } {
  const prefix = toPartitionKey({ name: name.toLowerCase(), key: '' });
  // "@name@" → "@nameA": '@' + 1 = 'A', the first string after every "@name@..." key.
  return { from: prefix, to: `${prefix.slice(0, -1)}A` };
}
