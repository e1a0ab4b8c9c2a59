/**
 * Server-Sent Events read from a fetch response, for the suites, the browser-free checks and the
 * bench: `for await (const e of sseEvents(response)) ...`, each `{ id, event, data }` (data parsed
 * as JSON when it is JSON). Comments (keep-alives) are skipped.
 */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: unknown;
  /** performance.timeOrigin + performance.now() when the event's last line arrived. */
  receivedAt: number;
}

export async function* sseEvents(response: Response): AsyncGenerator<SseEvent> {
  if (response.body === null) return;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | undefined;
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0 && id === undefined) continue;
      const text = data.join('\n');
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      yield { id, event, data: parsed, receivedAt: performance.timeOrigin + performance.now() };
    }
  }
}

/** Every event of a stream, until it ends. */
export async function allEvents(response: Response): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const e of sseEvents(response)) events.push(e);
  return events;
}

/** The reply text the events carry (deltas after the last reset). */
export function streamedText(events: readonly SseEvent[]): string {
  let text = '';
  for (const e of events) {
    if (e.event === 'reset') text = '';
    if (e.event === 'delta') text += (e.data as { text: string }).text;
  }
  return text;
}
