/**
 * Operation inputs as they travel to an entity. On the Azure Storage backend a signal is a queue
 * message, and queue messages are XML text: U+FFFE and U+FFFF cannot be carried in them (the queue
 * service refuses the message with a 400, which would leave such a chat message unpostable). The
 * Durable extension escapes control characters and lone surrogates itself, but not these two, so an
 * input holding them travels as escaped JSON text instead, and the entity restores it exactly.
 */
const NOT_IN_XML = /[\ufffe\uffff]/;
const ESCAPED_KEY = '$escapedJson';

export function encodeOperationInput(input: unknown): unknown {
  if (input === undefined) return undefined;
  const json = JSON.stringify(input);
  if (!NOT_IN_XML.test(json)) return input;
  return { [ESCAPED_KEY]: json.replace(/[\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`) };
}

export function decodeOperationInput(input: unknown): unknown {
  if (typeof input === 'object' && input !== null && ESCAPED_KEY in input) {
    const escaped = (input as Record<string, unknown>)[ESCAPED_KEY];
    if (typeof escaped === 'string') return JSON.parse(escaped) as unknown;
  }
  return input;
}
