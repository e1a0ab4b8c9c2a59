/**
 * Shared pieces of the reliability suites: the chat state as clients see it, the error-body shape
 * every error must have, a raw-socket HTTP exchange (for requests fetch refuses to send, such as
 * Content-Length lies), and the one-line summaries the suites print (the README's Reliability table).
 */
import net from 'node:net';
export { pollUntil } from '../support/poll';

/** The chat as the wire format promises it (declared here, not imported from src, so the tests check the contract). */
export interface MessageView {
  id: string;
  role: 'system' | 'user' | 'assistant';
  content: string;
  createdAt: string;
  replyTo?: string;
  status?: 'failed';
  error?: string;
}

export interface ChatView {
  id: string;
  exists: boolean;
  instructions: string;
  totalMessages: number;
  totalTokens: number;
  recentMessages: MessageView[];
}

export interface ErrorBody {
  error: { code: string; message: string };
}

/** True when `value` is `{"error":{"code","message"}}` with non-empty strings (extra top-level fields allowed). */
export function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false;
  const error: unknown = value.error;
  if (typeof error !== 'object' || error === null || !('code' in error) || !('message' in error)) return false;
  return typeof error.code === 'string' && error.code !== '' && typeof error.message === 'string' && error.message !== '';
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** GET of a chat; `app.url` builds the URL (with the function key where the runtime enforces keys). */
export async function readChat(app: { url(path: string): string }, chatId: string): Promise<ChatView | undefined> {
  const response = await fetch(app.url(`/api/chats/${encodeURIComponent(chatId)}`), { signal: AbortSignal.timeout(10_000) });
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`GET chat ${chatId} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as ChatView;
}

/** The turns of a chat: each user message with the entry that ends its turn (its reply or failed-turn record), if any. */
export function turnsOf(view: ChatView): { user: MessageView; answer: MessageView | undefined }[] {
  return view.recentMessages.filter((m) => m.role === 'user').map((user) => ({ user, answer: view.recentMessages.find((m) => m.id === `${user.id}.reply`) }));
}

export interface RawExchange {
  /** 'response': a complete first response was read; 'closed': the server closed without one; 'timeout': neither within the deadline. */
  outcome: 'response' | 'closed' | 'timeout';
  /** Status of the first response, if any. */
  status: number | undefined;
  headers: Record<string, string>;
  /** Body of the first response (de-chunked). */
  body: string;
  /** Status codes of every response seen on the connection (a lie about the length can make the server see two requests). */
  statuses: number[];
  elapsedMs: number;
}

/**
 * Writes `bytes` to a fresh TCP connection and reads until the server closes it or `deadlineMs`
 * passes. Requests should carry `Connection: close` so a well-behaved server closes after answering.
 * `halfClose` sends FIN after the bytes (a client that stops sending).
 */
export function rawExchange(port: number, bytes: Buffer, options: { deadlineMs?: number; halfClose?: boolean } = {}): Promise<RawExchange> {
  const deadlineMs = options.deadlineMs ?? 10_000;
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRawResponse(Buffer.concat(chunks).toString('latin1'), timedOut, Date.now() - started));
    };
    const timer = setTimeout(() => finish(true), deadlineMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => finish(false));
    // A reset after the server answered is still an answer; a reset before it is 'closed'.
    socket.on('error', () => finish(false));
    socket.write(bytes, () => {
      if (options.halfClose) socket.end();
    });
  });
}

function parseRawResponse(text: string, timedOut: boolean, elapsedMs: number): RawExchange {
  const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((match) => Number(match[1]));
  const headerEnd = text.indexOf('\r\n\r\n');
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (statusMatch === null || headerEnd === -1) {
    return { outcome: timedOut ? 'timeout' : 'closed', status: undefined, headers: {}, body: '', statuses, elapsedMs };
  }
  const headers: Record<string, string> = {};
  for (const line of text.slice(0, headerEnd).split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let rest = text.slice(headerEnd + 4);
  let body = rest;
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    body = '';
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      const size = lineEnd === -1 ? Number.NaN : parseInt(rest.slice(0, lineEnd), 16);
      if (!Number.isFinite(size) || size === 0) break;
      body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
      rest = rest.slice(lineEnd + 2 + size + 2);
    }
  } else if (headers['content-length'] !== undefined) {
    body = rest.slice(0, Number(headers['content-length']));
  }
  // The body was read as latin1 to keep byte boundaries; turn it back into UTF-8 text.
  return { outcome: 'response', status: Number(statusMatch[1]), headers, body: Buffer.from(body, 'latin1').toString('utf8'), statuses, elapsedMs };
}

/** Prints one summary line per scenario; docs/reliability.md quotes these lines. */
export function printSummary(scenario: string, counts: Record<string, number | string>): void {
  const fields = Object.entries(counts)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
  console.log(`[reliability] ${scenario}: ${fields}`);
}
