/** ask and whois end to end on the runtime under test, including SSE delivered as the model produces it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.stop());

describe('ask and whois', () => {
  it('answers ask as text/plain (seed curl: text/json, trailing slash)', async () => {
    t.model.enqueue({ reply: 'A poem.' });
    const response = await fetch(t.url('/api/ask/'), { method: 'POST', headers: { 'Content-Type': 'text/json' }, body: '{"prompt":"Write a poem"}' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await response.text()).toBe('A poem.');
  });

  it('answers whois', async () => {
    t.model.enqueue({ reply: 'A mathematician.' });
    const response = await fetch(t.url('/api/whois/Ada%20Lovelace'));
    expect(await response.text()).toBe('A mathematician.');
    expect(t.model.requests.at(-1)?.body.messages).toEqual([{ role: 'user', content: 'Who is Ada Lovelace?' }]);
  });

  it('streams SSE: the first event arrives before the model has finished', async () => {
    t.model.enqueue({ stream: ['The ', 'answer ', 'is ', '42.'], chunkDelayMs: 250 });
    const started = Date.now();
    const response = await fetch(t.url('/api/ask'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: '{"prompt":"meaning of life"}',
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let firstEventAt: number | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (firstEventAt === undefined && text.includes('event: delta')) firstEventAt = Date.now() - started;
    }
    const total = Date.now() - started;
    // the model takes 4 x 250 ms; the first delta must not have waited for the rest
    expect(firstEventAt).toBeDefined();
    expect(firstEventAt!).toBeLessThan(total - 500);
    const deltas = [...text.matchAll(/event: delta\ndata: (.*)\n\n/g)].map((m) => (JSON.parse(m[1]!) as { text: string }).text);
    expect(deltas.join('')).toBe('The answer is 42.');
    expect(text).toMatch(/event: done\ndata: \{"usage":\{/);
  });
});
