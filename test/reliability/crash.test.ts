/**
 * Crashes (DESIGN.md section 6): the runtime (the local host, or the Functions host with its Node
 * worker) is killed with SIGKILL under a load of posts across
 * many chats — at random moments, while a model call is in flight (mid-turn), and right after a post
 * was accepted — and restarted each time on the same (in-memory) Azurite. The clients behave like real ones: each chat's
 * client posts its messages one after the other with an Idempotency-Key, and retries a post with the
 * same key after a connection error or a 5xx, until it gets 202/200. At the end every accepted
 * message is stored exactly once, in the order its client sent it, and has a reply or a failed-turn
 * record.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastUserContent } from '../support/model-server';
import { pollUntil, printSummary, readChat, turnsOf, type ChatView } from './helpers';

const SEED = 7_007;
const CHATS = 10;
const MESSAGES_PER_CHAT = 40;
const KILLS = 9;
const MODEL_LATENCY_MS = 30;
/** Longest a chat may take to finish its turns after the last kill (see the wait at the end). */
const RECOVERY_MS = 150_000;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ MODEL_MAX_RETRIES: '2', MODEL_TIMEOUT_MS: '5000' });
  t.model.setDefault({ reply: (request) => `re: ${lastUserContent(request)}`, latencyMs: MODEL_LATENCY_MS });
});
afterAll(() => t?.stop());

interface ClientLog {
  /** HTTP attempts, including retries. */
  attempts: number;
  /** Attempts that failed with a connection error (the host was dead or died mid-request). */
  connectionErrors: number;
  /** Attempts answered with a 5xx. */
  serverErrors: number;
  /** Message ids in the order the client had them accepted (202 or 200). */
  accepted: string[];
  /** The accepted ids whose reply the client had (200) before it posted the next one. */
  answered: Set<string>;
  status200: number;
  status202: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves the next time any client has a post accepted (a kill point: "accepted" must mean stored). */
let nextAcceptance: { promise: Promise<void>; resolve: () => void } = acceptanceSignal();
function acceptanceSignal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Posts one message until it is accepted, retrying with the same Idempotency-Key as a real client would. */
async function postUntilAccepted(chatId: string, messageId: string, text: string, waitSeconds: number, log: ClientLog): Promise<void> {
  // Long enough to outlast every kill on a runtime that takes seconds to restart, while a waiting
  // post's turn may be held back by the queue's visibility timeout (see RECOVERY_MS).
  const deadline = Date.now() + 240_000;
  for (let retry = 0; ; retry++) {
    log.attempts++;
    try {
      // The host's address changes with each restart (it listens on a free port), so build it per attempt.
      const response = await fetch(t.url(`/api/chats/${chatId}?wait=${waitSeconds}`), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': messageId },
        body: JSON.stringify({ message: text }),
        signal: AbortSignal.timeout(20_000),
      });
      const body = await response.text(); // a response cut off by the kill counts as a failed attempt
      if (response.status === 200 || response.status === 202) {
        if (response.status === 200) {
          log.status200++;
          log.answered.add(messageId);
        }
        else log.status202++;
        log.accepted.push(messageId);
        nextAcceptance.resolve();
        return;
      }
      if (response.status < 500) throw new Error(`POST ${chatId} ${messageId} answered ${response.status}: ${body}`);
      log.serverErrors++;
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // fetch reports connection failures as TypeError
      log.connectionErrors++;
    }
    if (Date.now() > deadline) throw new Error(`POST ${chatId} ${messageId} was never accepted`);
    await sleep(Math.min(20 * 2 ** retry, 200));
  }
}

it(`loses and duplicates nothing across ${KILLS} kill -9s of the host under load`, async () => {
  const started = Date.now();
  const chatIds = Array.from({ length: CHATS }, (_, i) => `crash-${i}`);
  for (const chatId of chatIds) {
    const response = await fetch(t.url(`/api/chats/${chatId}`), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(response.status).toBe(201);
  }
  const logs = new Map<string, ClientLog>(chatIds.map((id) => [id, { attempts: 0, connectionErrors: 0, serverErrors: 0, accepted: [], answered: new Set(), status200: 0, status202: 0 }]));
  const textOf = (messageId: string) => `message ${messageId}`;

  let clientsDone = false;
  // Half the clients wait for each reply (200), half only for acceptance (?wait=0, 202): a kill then
  // catches some posts waiting on a turn and leaves others' turns queued in storage.
  const clients = Promise.all(
    chatIds.map(async (chatId, index) => {
      const log = logs.get(chatId) as ClientLog;
      for (let i = 0; i < MESSAGES_PER_CHAT; i++) {
        const messageId = `${chatId}-m${String(i).padStart(3, '0')}`;
        await postUntilAccepted(chatId, messageId, textOf(messageId), index % 2 === 0 ? 10 : 0, log);
      }
    }),
  ).finally(() => {
    clientsDone = true;
  });

  // Kill points, in turn: a random pause; a random pause, then the arrival of a model request and
  // less than the model's latency, so the kill lands inside a turn; a random pause, then the moment
  // a client gets a 202/200.
  const pauses = fc.sample(fc.integer({ min: 150, max: 600 }), { seed: SEED, numRuns: KILLS });
  const offsets = fc.sample(fc.integer({ min: 0, max: MODEL_LATENCY_MS - 10 }), { seed: SEED + 1, numRuns: KILLS });
  let kills = 0;
  let killsInsideTurn = 0;
  let killsRightAfterAccept = 0;
  for (let k = 0; k < KILLS && !clientsDone; k++) {
    // Each kill comes after the host (re)started has accepted a post, so the load makes progress
    // however long the runtime takes to come up, then after a random pause.
    nextAcceptance = acceptanceSignal();
    await Promise.race([nextAcceptance.promise, clients]);
    await sleep(pauses[k] ?? 300);
    if (k % 3 === 1) {
      // A model call in flight; after a kill, turns held by the dead instance may not run for a while.
      await Promise.race([t.model.waitForRequests(t.model.requests.length + 1, 10_000).catch(() => undefined), clients]);
      await sleep(offsets[k] ?? 0);
    } else if (k % 3 === 2) {
      nextAcceptance = acceptanceSignal();
      await Promise.race([nextAcceptance.promise, clients]);
    }
    if (clientsDone) break;
    await t.restartHost({ kill: true });
    kills++;
    if (k % 3 === 1) killsInsideTurn++;
    if (k % 3 === 2) killsRightAfterAccept++;
  }
  await clients;
  // The load is sized to outlast all the kills; at least two of each kind must have landed.
  expect(kills).toBeGreaterThanOrEqual(6);

  // Wait until each chat holds every accepted message with an answer; at the deadline, judge what is
  // there (so a loss shows up as lost=N in the summary rather than as a timeout). On the Functions
  // host, messages a killed instance had taken from its queue come back after the queue's visibility
  // timeout (host.json controlQueueVisibilityTimeout, 1 minute), so the deadline is longer than that.
  const states = new Map<string, ChatView>();
  for (const chatId of chatIds) {
    const accepted = (logs.get(chatId) as ClientLog).accepted;
    let last: ChatView | undefined;
    await pollUntil(
      `chat ${chatId} to answer all ${accepted.length} accepted messages`,
      async () => {
        last = await readChat(t, chatId);
        const turns = last === undefined ? [] : turnsOf(last);
        const storedIds = new Set(turns.map((turn) => turn.user.id));
        return accepted.every((id) => storedIds.has(id)) && turns.every((turn) => turn.answer !== undefined) ? true : undefined;
      },
      RECOVERY_MS,
    ).catch(() => undefined);
    states.set(chatId, last ?? { id: chatId, exists: false, instructions: '', totalMessages: 0, totalTokens: 0, recentMessages: [] });
  }

  let accepted = 0;
  let stored = 0;
  let duplicates = 0;
  let lost = 0;
  let unexpected = 0;
  let outOfOrder = 0;
  let afterReplyOutOfOrder = 0;
  let replies = 0;
  let failedTurns = 0;
  let unanswered = 0;
  for (const chatId of chatIds) {
    const log = logs.get(chatId) as ClientLog;
    const state = states.get(chatId) as ChatView;
    const userIds = state.recentMessages.filter((m) => m.role === 'user').map((m) => m.id);
    const storedOnce = new Set(userIds);
    accepted += log.accepted.length;
    stored += userIds.length;
    duplicates += userIds.length - storedOnce.size;
    lost += log.accepted.filter((id) => !storedOnce.has(id)).length;
    unexpected += userIds.filter((id) => !log.accepted.includes(id)).length;
    // Sequential from the client's point of view, so the stored order should be the acceptance order.
    if (JSON.stringify([...storedOnce]) !== JSON.stringify(log.accepted)) outOfOrder++;
    // A message posted after its predecessor's reply was seen must be stored after it, always.
    const position = new Map([...storedOnce].map((id, index) => [id, index]));
    log.accepted.forEach((id, i) => {
      const previous = log.accepted[i - 1];
      if (previous !== undefined && log.answered.has(previous) && (position.get(id) ?? -1) < (position.get(previous) ?? -1)) afterReplyOutOfOrder++;
    });
    for (const { user, answer } of turnsOf(state)) {
      if (answer === undefined) unanswered++;
      else if (answer.status === 'failed') failedTurns++;
      else {
        replies++;
        expect(answer.content).toBe(`re: ${user.content}`);
      }
      expect(user.content).toBe(textOf(user.id));
    }
    expect(state.recentMessages).toHaveLength(2 * userIds.length); // only turns, nothing stray
  }
  const totals = [...logs.values()].reduce(
    (sum, log) => ({
      attempts: sum.attempts + log.attempts,
      connectionErrors: sum.connectionErrors + log.connectionErrors,
      serverErrors: sum.serverErrors + log.serverErrors,
      status200: sum.status200 + log.status200,
      status202: sum.status202 + log.status202,
    }),
    { attempts: 0, connectionErrors: 0, serverErrors: 0, status200: 0, status202: 0 },
  );
  printSummary('kill -9 under load', {
    seed: SEED,
    chats: CHATS,
    messages: CHATS * MESSAGES_PER_CHAT,
    postAttempts: totals.attempts,
    connectionErrors: totals.connectionErrors,
    answered5xx: totals.serverErrors,
    accepted,
    accepted200: totals.status200,
    accepted202: totals.status202,
    kills,
    killsInsideTurn,
    killsRightAfterAccept,
    stored,
    duplicates,
    lost,
    unexpected,
    chatsOutOfOrder: outOfOrder,
    storedBeforeAnAnsweredPredecessor: afterReplyOutOfOrder,
    replies,
    failedTurns,
    unanswered,
    modelCalls: t.model.requests.length,
    modelCallsBeyondOnePerTurn: t.model.requests.length - (replies + failedTurns),
    seconds: ((Date.now() - started) / 1000).toFixed(1),
  });
  // A post is answered 2xx only once its message is stored, so posts a client sent one after another
  // are stored in that order, across kills too, on both runtimes.
  expect({ accepted, stored, duplicates, lost, unexpected, outOfOrder, afterReplyOutOfOrder, unanswered }).toEqual({
    accepted: CHATS * MESSAGES_PER_CHAT,
    stored: CHATS * MESSAGES_PER_CHAT,
    duplicates: 0,
    lost: 0,
    unexpected: 0,
    outOfOrder: 0,
    afterReplyOutOfOrder: 0,
    unanswered: 0,
  });
  expect(replies + failedTurns).toBe(CHATS * MESSAGES_PER_CHAT);
  // Clients see connection errors while the host is down, but never a 5xx from a live one.
  expect(totals.serverErrors).toBe(0);
  // The kills happened under load: some posts were cut off and retried, and some turns were cut off
  // mid-call and run again after the restart (at-least-once execution, exactly-once effect).
  expect(totals.connectionErrors).toBeGreaterThan(0);
  expect(t.model.requests.length).toBeGreaterThan(CHATS * MESSAGES_PER_CHAT);
}, 480_000);

it('stores unusual but valid text exactly, and it survives a kill -9', { timeout: RECOVERY_MS + 60_000 }, async () => {
  const texts = ['\ud800 lone high surrogate', 'lone low \udfff', 'NUL \u0000 inside', 'non-character \uffff', 'emoji 💬👩‍👩‍👧', 'right-to-left \u202e text', `long ${'x'.repeat(31_000)}`];
  expect((await fetch(t.url('/api/chats/odd-text'), { method: 'PUT', body: '{}' })).status).toBe(201);
  for (const [i, message] of texts.entries()) {
    const response = await fetch(t.url('/api/chats/odd-text?wait=0'), { method: 'POST', headers: { 'Idempotency-Key': `odd-${i}` }, body: JSON.stringify({ message }) });
    expect(response.status).toBe(202);
  }
  await t.restartHost({ kill: true });
  const state = await pollUntil('the odd-text chat to answer every message', async () => {
    const view = await readChat(t, 'odd-text');
    return view !== undefined && turnsOf(view).filter((turn) => turn.answer !== undefined).length === texts.length ? view : undefined;
  }, RECOVERY_MS);
  expect(turnsOf(state).map((turn) => [turn.user.content, turn.answer?.content])).toEqual(texts.map((text) => [text, `re: ${text}`]));
});
