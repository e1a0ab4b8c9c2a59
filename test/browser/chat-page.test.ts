/**
 * The chat page (GET /api/ui) in a real browser: Debian's Chromium driven by playwright-core, against
 * the real compiled app on the runtime under test with in-memory Azurite and the scripted model server.
 * Needs `npm run build` first (npm test does it) and /usr/bin/chromium (.ci/run installs it).
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { errors } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { REPO_ROOT } from '../support/host';
import { pollUntil } from '../support/poll';
import { lastMessage, lastUserContent, type RecordedRequest } from '../support/model-server';
import { contentSecurityPolicy } from '../../src/functions/ui';
import { launchChromium, waitForText, waitForTexts, type PageGlobals, type TextMatcher } from './chromium';

const MESSAGES = '#messages .message .text';
/** The history's system entry for the instructions a chat was created with (the page's default ones unless set). */
const instructionsEntry = (text = 'You are a helpful assistant.') => `Instructions: ${text}`;
const SCREENSHOT = path.join(REPO_ROOT, 'test-results', 'chat-page.png');
const echo = (request: RecordedRequest) => `echo: ${lastUserContent(request)}`;

let t: TestApp;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let pageErrors: Error[];

beforeAll(async () => {
  // Both at once, keeping whichever started even if the other failed, so afterAll can stop it.
  const [app, chromium] = await Promise.allSettled([startTestApp(), launchChromium()]);
  if (app.status === 'fulfilled') t = app.value;
  if (chromium.status === 'fulfilled') browser = chromium.value;
  for (const outcome of [chromium, app]) if (outcome.status === 'rejected') throw outcome.reason;
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

beforeEach(async () => {
  t.model.setDefault({ reply: echo });
  context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  page = await context.newPage();
  pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error));
});
afterEach(async () => {
  t.model.release(); // a test that failed while it held the model's requests
  await context?.close();
  // An exception thrown in the page is a bug even when the visible checks passed.
  expect(pageErrors.map((e) => e.message)).toEqual([]);
});

async function openPage(query = ''): Promise<void> {
  await page.goto(t.url(`/api/ui${query}`));
}

async function openChat(chatId: string, instructions?: string): Promise<void> {
  await page.fill('#chat-id', chatId);
  if (instructions !== undefined) await page.fill('#instructions', instructions);
  await page.click('#open');
  await waitForText(page, '#status', /^(Created|Reopened) chat /);
}

async function sendMessage(text: string): Promise<void> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

/** A turn that adds "buy bread" (todo 1) with call `callId`; resolves to the texts of the conversation so far. */
async function addBreadTurn(callId: string): Promise<TextMatcher[]> {
  t.model.enqueue({ toolCalls: [{ id: callId, name: 'add_todo', arguments: { task: 'buy bread' } }] }, { reply: 'Added bread.' });
  await sendMessage('Remind me to buy bread');
  const texts = [instructionsEntry(), 'Remind me to buy bread', '→ add_todo({"task":"buy bread"})', /^✓ add_todo: \{"id":1,"task":"buy bread"/, 'Added bread.'];
  await waitForTexts(page, MESSAGES, texts);
  await waitForText(page, '#status', /up to date/);
  return texts;
}

/** Resolves to 'requested' if the page sends a matching request within `ms`, else 'quiet'. */
async function requestWithin(predicate: (request: Request) => boolean, ms: number): Promise<'requested' | 'quiet'> {
  try {
    await page.waitForRequest(predicate, { timeout: ms });
    return 'requested';
  } catch (err) {
    if (err instanceof errors.TimeoutError) return 'quiet';
    throw err;
  }
}

describe('chat page', () => {
  it('creates a chat, sends two messages (Enter, then Send) and shows both replies in order; a reload reopens it', async () => {
    const replies: Record<string, string> = {
      'Hello!': 'Hi! How can I help?',
      'What is a durable entity?': 'A small piece of state with an id that handles operations one at a time, in order.',
    };
    // Slower than the page's 500 ms poll, so a reply arrives only after several polls.
    t.model.setDefault({ reply: (r) => replies[lastUserContent(r)] ?? echo(r), latencyMs: 700 });
    await openPage();

    // Nothing to send to before a chat is open.
    expect(await page.isDisabled('#message')).toBe(true);
    expect(await page.isDisabled('#send')).toBe(true);

    await openChat('browser-two-messages', 'You are a concise assistant.');
    expect(await page.isDisabled('#send')).toBe(true); // still nothing typed
    await page.fill('#message', 'Hello!');
    await page.press('#message', 'Enter');
    // Shown at once, with a pending bubble, long before the reply exists.
    await waitForTexts(page, MESSAGES, [instructionsEntry('You are a concise assistant.'), 'Hello!', 'Thinking…']);
    expect(await page.inputValue('#message')).toBe('');

    // The second message goes while the first is still pending; the chat answers them in order.
    await page.fill('#message', 'What is a durable entity?');
    await page.click('#send');
    const conversation = [instructionsEntry('You are a concise assistant.'), 'Hello!', replies['Hello!']!, 'What is a durable entity?', replies['What is a durable entity?']!];
    await waitForTexts(page, MESSAGES, conversation);
    // The streamed replies show before the turns' last read of the chat; once it is done, nothing is pending.
    await waitForText(page, '#status', /up to date/);
    // From here on: watch for any further read of the chat while the ask runs.
    const nextPoll = requestWithin((r) => r.method() === 'GET' && r.url().includes('/api/chats/'), 1_500);
    expect(t.model.requests.map(lastUserContent)).toEqual(['Hello!', 'What is a durable entity?']);

    // A streamed answer in the ask box too, for the screenshot.
    t.model.enqueue({ stream: ['Azure Functions ', 'runs your code ', 'on demand and ', 'scales it for you.'] });
    await page.fill('#prompt', 'What does Azure Functions do?');
    await page.click('#ask');
    await waitForText(page, '#ask-status', /^Done \(\d+ tokens\)\.$/);
    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });

    // The page stopped polling: no read in 3 poll intervals. Absence cannot be awaited as an
    // event; the bounded window is the check.
    expect(await nextPoll).toBe('quiet');

    // The address now names the chat: a reload reopens it with its history and its instructions.
    expect(new URL(page.url()).hash).toBe('#chat=browser-two-messages');
    await page.reload();
    await waitForText(page, '#status', 'Reopened chat browser-two-messages: 5 messages.');
    await waitForTexts(page, MESSAGES, conversation);
    expect(await page.inputValue('#instructions')).toBe('You are a concise assistant.');

    // Reopening did not change the instructions; Save instructions does.
    await page.fill('#instructions', 'Answer in French.');
    await page.click('#save-instructions');
    await waitForText(page, '#status', /^Instructions saved/);
    // The change is in the history where it happened, as a system entry.
    await waitForTexts(page, MESSAGES, [...conversation, instructionsEntry('Answer in French.')]);
    const state = (await (await fetch(t.url('/api/chats/browser-two-messages'))).json()) as { instructions: string; totalMessages: number };
    expect(state).toMatchObject({ instructions: 'Answer in French.', totalMessages: 6 });
  });

  it('shows a failed turn as failed, and Retry sends the message again', async () => {
    t.model.setDefault({ status: 503 }); // every attempt, including the app's retries
    await openPage();
    await openChat('browser-failed-turn');
    await page.fill('#message', 'Will this work?');
    await page.press('#message', 'Enter');
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'Will this work?', /^Failed: .+/]);
    expect(await page.getAttribute('#messages .message.assistant', 'class')).toContain('failed');

    t.model.setDefault({ reply: echo });
    await page.getByRole('button', { name: 'Retry' }).click();
    // The failed turn stays in the history; the retry is a new turn after it.
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'Will this work?', /^Failed: .+/, 'Will this work?', 'echo: Will this work?']);
    expect(await page.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    expect(await page.getAttribute('#status', 'class')).not.toContain('error');
  });

  it('shows a streamed answer as it arrives, before the model has finished; and shows a failed ask', async () => {
    t.model.enqueue({ stream: ['The ', 'answer ', 'is ', '42.'], chunkDelayMs: 300 });
    await openPage();
    await page.fill('#prompt', 'What is the meaning of life?');
    await page.press('#prompt', 'Enter');

    // One snapshot of answer and status, taken in the page the moment the first chunk is shown.
    const firstSight = await page.waitForFunction(() => {
      const { document } = globalThis as unknown as PageGlobals;
      const answer = document.querySelector('#answer')?.textContent ?? '';
      return answer.includes('The') ? { answer, status: document.querySelector('#ask-status')?.textContent ?? '' } : false;
    });
    const partial = (await firstSight.jsonValue()) as { answer: string; status: string };
    expect(partial.status).toBe('Streaming…');
    expect(partial.answer).not.toBe('The answer is 42.');
    await waitForText(page, '#answer', 'The answer is 42.');
    await waitForText(page, '#ask-status', /^Done \(\d+ tokens\)\.$/);

    t.model.setDefault({ status: 503 });
    await page.fill('#prompt', 'And now?');
    await page.click('#ask');
    await waitForText(page, '#ask-status', /^Failed: 50\d .+/);
    expect(await page.textContent('#answer')).toBe('');
    expect(await page.getAttribute('#ask-status', 'class')).toContain('error');
  });

  it('shows a chat reply as it streams, before the model has finished, then the stored reply', async () => {
    await openPage();
    await openChat('browser-streamed-reply');
    t.model.enqueue({ stream: ['Entities ', 'keep ', 'state ', 'durably.'], chunkDelayMs: 300 });
    await page.fill('#message', 'What do entities do?');
    await page.press('#message', 'Enter');
    // One snapshot of the reply bubble, the moment the first text is shown in it.
    const firstSight = await page.waitForFunction(() => {
      const { document } = globalThis as unknown as PageGlobals;
      const text = document.querySelector('#messages .message.assistant.streaming .text')?.textContent ?? '';
      return text.includes('Entities') ? text : false;
    });
    expect(await firstSight.jsonValue()).not.toBe('Entities keep state durably.');
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'What do entities do?', 'Entities keep state durably.']);
    await waitForText(page, '#status', /up to date/);
    expect(await page.locator('#messages .pending').count()).toBe(0);
  });

  it('shows a turn\'s tool calls and their results before its reply, streamed and after a reload', async () => {
    await openPage();
    await openChat('browser-tools');
    t.model.enqueue({ toolCalls: [{ id: 'call_b1', name: 'add_todo', arguments: { task: 'buy bread' } }] }, { stream: ['Added ', 'bread.'], chunkDelayMs: 200 });
    await page.fill('#message', 'Remind me to buy bread');
    await page.press('#message', 'Enter');
    // While the turn streams, the call shows before the reply bubble, as a live step.
    await page.waitForFunction(() => {
      const { document } = globalThis as unknown as PageGlobals;
      const live = document.querySelector('#messages .message.tool.live .text')?.textContent ?? '';
      return live.includes('add_todo') && document.querySelector('#messages .message.assistant.pending') !== null;
    });
    const steps = [instructionsEntry(), 'Remind me to buy bread', '→ add_todo({"task":"buy bread"})', /^✓ add_todo: \{"id":1,"task":"buy bread"/, 'Added bread.'];
    await waitForTexts(page, MESSAGES, steps);
    await page.reload();
    await openChat('browser-tools');
    await waitForTexts(page, MESSAGES, steps);
    expect(await page.locator('#messages .message.tool').count()).toBe(2);
  });

  it('asks before remove_todo runs; Approve runs it, and its result and the reply follow', async () => {
    await openPage();
    await openChat('browser-approve');
    const first = await addBreadTurn('call_ab_add');

    t.model.enqueue({ toolCalls: [{ id: 'call_ab_rm', name: 'remove_todo', arguments: { id: 1 } }] });
    await sendMessage('I bought the bread');
    // The turn pauses before the call runs: the call, Approve and Deny; Stop, as a turn runs.
    const approve = page.locator('[data-approve="call_ab_rm"]');
    await approve.waitFor();
    expect(await page.textContent('[data-approval="call_ab_rm"] .text')).toBe('remove_todo({"id":1})');
    expect(await page.isEnabled('[data-deny="call_ab_rm"]')).toBe(true);
    await waitForText(page, '#messages .message.assistant.pending .text', 'Waiting for approval…');
    expect(await page.isVisible('#stop')).toBe(true);
    const modelCalls = t.model.requests.length;

    // The turn's next model call waits (its answer scripted now: a held request has taken its
    // behaviour already), so the answered box can be seen before the turn ends.
    t.model.enqueue({ stream: ['Removed ', 'the bread.'] });
    t.model.hold();
    const answered = page.waitForResponse((r) => r.url().includes('/approvals/'));
    await approve.click();
    const response = await answered;
    expect(response.request().postDataJSON()).toEqual({ approved: true });
    expect(response.status()).toBe(200);
    expect(await response.json()).toEqual({ chatId: 'browser-approve', toolCallId: 'call_ab_rm', approved: true });
    expect(await page.isDisabled('[data-approve="call_ab_rm"]')).toBe(true);
    expect(await page.isDisabled('[data-deny="call_ab_rm"]')).toBe(true);
    await waitForText(page, '[data-approval="call_ab_rm"] .note', 'Approved: the tool runs.');
    await t.model.waitForRequests(modelCalls + 1);
    t.model.release();

    // The tool ran, the model got its result, and the turn's stored steps replace the live ones.
    const steps = [...first, 'I bought the bread', '→ remove_todo({"id":1})', /^✓ remove_todo \(approved\): \{"removed":\{"id":1,"task":"buy bread"/, 'Removed the bread.'];
    await waitForTexts(page, MESSAGES, steps);
    expect(lastMessage(t.model.requests.at(-1)!)).toMatchObject({ role: 'tool', tool_call_id: 'call_ab_rm' });
    expect(await page.locator('[data-approval]').count()).toBe(0);
    await waitForText(page, '#status', /up to date/);
    expect(await page.isHidden('#stop')).toBe(true);

    await page.reload();
    await waitForText(page, '#status', /^Reopened chat browser-approve/);
    await waitForTexts(page, MESSAGES, steps);
  });

  it('shows a pending approval when the chat is opened; Deny keeps the tool from running, and the reply follows', async () => {
    await openPage();
    await openChat('browser-deny');
    const first = await addBreadTurn('call_bd_add');

    t.model.enqueue({ toolCalls: [{ id: 'call_bd_rm', name: 'remove_todo', arguments: { id: 1 } }] });
    await sendMessage('Forget the bread');
    await page.locator('[data-deny="call_bd_rm"]').waitFor();

    // A reload while the turn waits: the chat's runningTurn brings the question back.
    await page.reload();
    await waitForText(page, '#status', /^Reopened chat browser-deny/);
    await waitForTexts(page, MESSAGES, [...first, 'Forget the bread', 'remove_todo({"id":1})', 'Waiting for approval…']);
    expect(await page.isVisible('#stop')).toBe(true);

    t.model.enqueue({ reply: 'Fine, I left it on your list.' });
    const answered = page.waitForResponse((r) => r.url().includes('/approvals/'));
    await page.click('[data-deny="call_bd_rm"]');
    const response = await answered;
    expect(response.request().postDataJSON()).toEqual({ approved: false });
    expect(response.status()).toBe(200);
    expect(await response.json()).toEqual({ chatId: 'browser-deny', toolCallId: 'call_bd_rm', approved: false });

    const steps = [...first, 'Forget the bread', '→ remove_todo({"id":1})', /^⊘ remove_todo \(denied\): \{"error":"The user denied/, 'Fine, I left it on your list.'];
    await waitForTexts(page, MESSAGES, steps);
    expect(await page.locator('#messages .message.tool.denied').count()).toBe(1);
    // The model was told the call did not run.
    const told = lastMessage(t.model.requests.at(-1)!);
    expect(told).toMatchObject({ role: 'tool', tool_call_id: 'call_bd_rm' });
    expect(JSON.parse(told?.content ?? '')).toMatchObject({ error: expect.stringContaining('denied') });
    await waitForText(page, '#status', /up to date/);
    expect(await page.isHidden('#stop')).toBe(true);
  });

  it('shows an answer the chat had already taken as a note', async () => {
    await openPage();
    await openChat('browser-approval-settled');
    t.model.enqueue({ toolCalls: [{ id: 'call_as_rm', name: 'remove_todo', arguments: { id: 7 } }] });
    await sendMessage('Remove task 7');
    await page.locator('[data-deny="call_as_rm"]').waitFor();

    // Someone else approves first: the page's own answer, sent right after, is refused.
    let elsewhere: { status: number; body: unknown } | undefined;
    await page.route('**/approvals/**', async (route) => {
      const other = await fetch(t.url('/api/chats/browser-approval-settled/approvals/call_as_rm'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ approved: true }) });
      elsewhere = { status: other.status, body: await other.json() };
      await route.continue();
    });
    t.model.hold();
    const answered = page.waitForResponse((r) => r.url().includes('/approvals/'));
    await page.click('[data-deny="call_as_rm"]');
    const response = await answered;
    expect(elsewhere).toEqual({ status: 200, body: { chatId: 'browser-approval-settled', toolCallId: 'call_as_rm', approved: true } });
    expect(response.status()).toBe(409);
    expect(await response.json()).toMatchObject({ error: { code: 'approval_settled', message: expect.stringContaining('already approved') } });
    await waitForText(page, '[data-approval="call_as_rm"] .note', /^Not changed: .*already approved/);
    expect(await page.getAttribute('[data-approval="call_as_rm"] .note', 'class')).not.toContain('error');
    expect(await page.isDisabled('[data-approve="call_as_rm"]')).toBe(true);
    t.model.release();

    // The approved call ran (task 7 does not exist: a tool error the model sees), then the reply.
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'Remove task 7', '→ remove_todo({"id":7})', /^✗ remove_todo \(approved\): \{"error":/, 'echo: Remove task 7']);
  });

  it('stops a streaming turn at Stop: its partial text stays, marked as stopped, and the next message is answered', async () => {
    await openPage();
    await openChat('browser-stop');
    const story = Array.from({ length: 40 }, (_, i) => `word${i + 1} `);
    t.model.enqueue({ stream: story, chunkDelayMs: 250 });
    await sendMessage('Tell me a long story');
    await page.waitForFunction(() => {
      const { document } = globalThis as unknown as PageGlobals;
      return (document.querySelector('#messages .message.assistant.streaming .text')?.textContent ?? '').includes('word2 ');
    });
    // A message queued behind the running turn.
    await sendMessage('And then?');
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'Tell me a long story', /^word1 word2 /, 'And then?', 'Thinking…']);

    expect(await page.isVisible('#stop')).toBe(true);
    const cancelled = page.waitForResponse((r) => r.url().includes('/cancel'));
    await page.click('#stop');
    const response = await cancelled;
    expect(response.request().postDataJSON()).toEqual({ messageId: expect.stringMatching(/^ui-/) });
    expect([200, 202]).toContain(response.status());
    expect(await response.json()).toMatchObject({ chatId: 'browser-stop', messageId: response.request().postDataJSON().messageId, status: response.status() === 200 ? 'cancelled' : 'cancelling' });

    const conversation = [instructionsEntry(), 'Tell me a long story', /^word1 word2 /, 'And then?', 'echo: And then?'];
    await waitForTexts(page, MESSAGES, conversation);
    const partial = (await page.textContent('#messages .message.cancelled .text')) ?? '';
    expect(story.join('').startsWith(partial)).toBe(true);
    expect(partial.length).toBeLessThan(story.join('').length);
    expect(await page.textContent('#messages .message.cancelled .note')).toBe('⏹ Stopped.');
    await waitForText(page, '#status', /up to date/);
    expect(await page.isHidden('#stop')).toBe(true);

    // Stored as the chat's record of the turn: a reload shows the same.
    await page.reload();
    await waitForText(page, '#status', /^Reopened chat browser-stop/);
    await waitForTexts(page, MESSAGES, conversation);
    expect(await page.textContent('#messages .message.cancelled .text')).toBe(partial);
  });

  it('shows markup in model output as literal text and never runs it', async () => {
    const payload = '<img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script>';
    t.model.setDefault({ reply: payload });
    await openPage();
    await openChat('browser-markup');
    await page.fill('#message', 'Show me some HTML');
    await page.press('#message', 'Enter');
    await waitForTexts(page, MESSAGES, [instructionsEntry(), 'Show me some HTML', payload]);

    t.model.enqueue({ stream: ['<img src=x onerror="window.__pwned=1">', ' and <script>window.__pwned=2', '</script>'] });
    await page.fill('#prompt', 'And streamed?');
    await page.click('#ask');
    await waitForText(page, '#ask-status', /^Done/);
    expect(await page.textContent('#answer')).toBe(payload);

    // Shown as text: no element was made from it, so nothing can load or run later.
    expect(await page.locator('#messages img, #messages script, #answer *').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();

    // Second line of defence: even markup that got in could not run, because the page's CSP blocks
    // inline handlers (and the image load itself). The probe settles when its image has failed and
    // either the policy reported the blocked handler (script-src…) or the handler ran.
    const probe = await page.evaluate(
      () =>
        new Promise<{ pwned: unknown; directives: string[] }>((resolve) => {
          const { document } = globalThis as unknown as PageGlobals;
          const seen = { errored: false, directives: [] as string[] };
          const settle = () => {
            const pwned = (globalThis as unknown as PageGlobals).__pwned;
            const blocked = seen.directives.some((d) => d.startsWith('script-src'));
            if (seen.errored && (blocked || pwned !== undefined)) resolve({ pwned, directives: seen.directives });
          };
          document.addEventListener('securitypolicyviolation', (event) => (seen.directives.push(event.violatedDirective), settle()));
          const holder = document.createElement('div');
          holder.innerHTML = '<img src="x" onerror="window.__pwned=3">';
          holder.firstElementChild?.addEventListener('error', () => ((seen.errored = true), settle()));
          document.body.append(holder);
        }),
    );
    expect(probe.pwned).toBeUndefined();
    expect(probe.directives).toContainEqual(expect.stringMatching(/^script-src/));

    const response = await fetch(t.url('/api/ui'));
    const policy = response.headers.get('content-security-policy') ?? '';
    expect(policy).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(policy).not.toContain('unsafe-inline');
  });

  it('lists the chats newest first, opens one on a click, and starts a new one', async () => {
    t.model.setDefault({ reply: echo });
    for (const [id, text] of [
      ['list-older', 'Plan the garden'],
      ['list-newer', 'Book the trip'],
    ] as const) {
      expect((await fetch(t.url(`/api/chats/${id}`), { method: 'PUT', body: '{}' })).status).toBe(201);
      expect((await fetch(t.url(`/api/chats/${id}?wait=60`), { method: 'POST', body: JSON.stringify({ message: text }) })).status).toBe(200);
    }
    // The list follows its chats by signals, within moments; the page reads it when it opens.
    await pollUntil('the list to show both chats', async () => {
      const listed = (await (await fetch(t.url('/api/chats?limit=2'))).json()) as { chats: { id: string; messageCount: number }[] };
      return listed.chats.map((c) => `${c.id}:${c.messageCount}`).join() === 'list-newer:2,list-older:2' ? true : undefined;
    });
    await openPage();
    await waitForText(page, '#chats li:nth-child(1) button', 'Book the trip');
    await waitForText(page, '#chats li:nth-child(2) button', 'Plan the garden');
    await page.click('#chats button[data-chat="list-older"]');
    await waitForText(page, '#status', 'Reopened chat list-older: 2 messages.');
    await waitForTexts(page, MESSAGES, ['Plan the garden', 'echo: Plan the garden']);
    await waitForText(page, '#chats button[aria-current="true"]', 'Plan the garden');

    await page.click('#new-chat');
    await waitForText(page, '#status', /^Created chat chat-[0-9a-f]{8}\.$/);
    const created = new URL(page.url()).hash.replace('#chat=', '');
    // A chat without messages is listed by its id, first (its activity is the newest).
    await waitForText(page, '#chats li:nth-child(1) button', created);
    expect(await page.textContent(MESSAGES)).toBe(instructionsEntry());
  });

  it('passes ?code on as x-functions-key and refuses a bad chat id', async () => {
    // The runtime's own key where it checks keys (the Functions host), else any key.
    const key = t.runtime.functionKey ?? 'test-function-key';
    await page.goto(`${t.host.url}/api/ui?code=${encodeURIComponent(key)}`);
    await page.fill('#chat-id', 'not a valid id!');
    await page.click('#open');
    await waitForText(page, '#status', /^A chat id is 1–128 characters/);
    expect(await page.isDisabled('#message')).toBe(true);

    const chatRequest = page.waitForRequest((r) => r.url().includes('/api/chats/browser-key'));
    await openChat('browser-key');
    expect((await chatRequest).headers()['x-functions-key']).toBe(key);
    // The key stays in the address next to the chat id, so a reload keeps working in Azure.
    const address = new URL(page.url());
    expect(address.search).toBe(`?code=${encodeURIComponent(key)}`);
    expect(address.hash).toBe('#chat=browser-key');
  });

  it('says why a message was not sent and gives its text back', async () => {
    await openPage();
    await openChat('browser-deleted');
    expect((await fetch(t.url('/api/chats/browser-deleted'), { method: 'DELETE' })).status).toBe(204);
    await page.fill('#message', 'Anyone there?');
    await page.press('#message', 'Enter');
    await waitForText(page, '#status', /^Not sent \(404 .+\)\.$/);
    expect(await page.inputValue('#message')).toBe('Anyone there?');
    // Only the instructions entry: the message was not added to the history.
    expect(await page.locator('#messages .message').count()).toBe(1);
  });
});

describe('the page\'s Content-Security-Policy', () => {
  // The browser tests above prove the hash matches what Chromium computes for this checkout.
  it('hashes the script as the browser parses it, so a CRLF checkout is served the same policy', async () => {
    const html = await readFile(path.join(REPO_ROOT, 'ui', 'chat.html'), 'utf8');
    const lf = html.replace(/\r\n?/g, '\n');
    expect(contentSecurityPolicy(lf.replace(/\n/g, '\r\n'))).toBe(contentSecurityPolicy(lf));
    expect(contentSecurityPolicy(lf.replace('use strict', 'use  strict'))).not.toBe(contentSecurityPolicy(lf));
  });
});
