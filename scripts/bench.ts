/**
 * `npm run bench`: measures the app against the model it wraps, all in one run on this machine, on
 * both runtimes one after the other — the local host, and the Functions host when it is available
 * (Core Tools' `func`, or FUNCTIONS_HOST_DIR; test/support/runtimes.ts) — each with in-memory
 * Azurite behind a counting proxy and the scripted model server on loopback. Prints one table per
 * figure with a column per runtime; asserts nothing (figures go to the README's "Performance").
 *
 *   npm run bench                # everything (about 15-25 minutes with both runtimes)
 *   npm run bench -- --quick     # fewer samples, for a smoke run
 *   npm run bench -- --only=cost,scale   # some sections: ask, turn, storage, scale, growth, cost, stream, rows, list
 *   npm run bench -- --runtime=real --host-json='{"extensions":{"durableTask":{"maxEntityOperationBatchSize":16}}}'
 *                                # one runtime; host.json settings merged into the Functions host's package
 *   npm run bench -- --only=turn --baseline=024c2ad
 *                                # also the `turn` figure of an earlier commit, measured in this run: its
 *                                # checkout in a temporary git worktree under the OS temp folder (this
 *                                # checkout's node_modules linked in), built, its own bench run on the same
 *                                # runtimes, the worktree removed at the end (`git worktree prune` if killed)
 */
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { countMessageTokens, REPLY_PRIMING_TOKENS } from '../src/chat/tokens';
import { startTestApp, type TestApp } from '../test/support/app';
import { REPO_ROOT } from '../test/support/host';
import { lastMessage, lastUserContent, type ModelServer, type RecordedRequest, type ScriptedToolAnswer } from '../test/support/model-server';
import { sseEvents } from '../test/support/sse';
import { countStreamRecords, readStoredEntity, settledTaskHubRows } from '../test/support/stored';
import { localRuntime, realHostSetup, realRuntime, type Runtime, type RuntimeName } from '../test/support/runtimes';
import { stageRealHostPackage } from '../test/support/stage-real-host';

const quick = process.argv.includes('--quick');
const SECTIONS = ['ask', 'turn', 'storage', 'scale', 'growth', 'cost', 'stream', 'rows', 'list'] as const;
const argument = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(`--${name}=`.length);
const onlyArg = argument('only');
const selected = new Set<string>(onlyArg === undefined ? SECTIONS : onlyArg.split(','));
const runtimeArg = argument('runtime');
const hostJsonArg = argument('host-json');
const baselineArg = argument('baseline');
const scale = (n: number) => (quick ? Math.max(10, Math.round(n / 5)) : n);
const MODEL_LATENCY_MS = 50;
const BUDGET = 4000;

// ---------- small statistics and table helpers ----------

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean: sorted.reduce((s, x) => s + x, 0) / sorted.length, n: sorted.length };
}
const ms = (x: number) => `${x.toFixed(2)} ms`;
function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}
/** Runs `fn` over `items` with at most `limit` in flight, like a client with a connection pool. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}
async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}
/** Epoch milliseconds on the performance clock, as the model server and sseEvents stamp their times. */
const clock = () => performance.timeOrigin + performance.now();
/** Peak resident memory of a process (VmHWM), in MiB. */
async function peakMemoryMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** CPU time (user + system) used so far by a process and (unless `alone`) each of its descendants, in ms, by pid. */
async function cpuMsByProcess(rootPid: number, alone = false): Promise<Map<number, { name: string; ms: number }>> {
  const { readdir } = await import('node:fs/promises');
  const ticksPerSecond = 100; // USER_HZ on Linux
  const stats = new Map<number, { ppid: number; name: string; ms: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    const fields = stat.slice(close + 2).split(' ');
    stats.set(Number(entry), { name: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond });
  }
  const tree = new Map<number, { name: string; ms: number }>();
  const visit = (pid: number) => {
    const stat = stats.get(pid);
    if (stat === undefined) return;
    tree.set(pid, { name: stat.name, ms: stat.ms });
    if (!alone) for (const [child, s] of stats) if (s.ppid === pid) visit(child);
  };
  visit(rootPid);
  return tree;
}

/** CPU ms per process name over `fn`, for the runtime's process tree, Azurite and this bench. */
async function cpuDuring<T>(app: Bench, fn: () => Promise<T>): Promise<[Record<string, number>, T]> {
  // The bench process alone: the runtime and Azurite are its children.
  const sample = () => Promise.all([cpuMsByProcess(app.t.host.pid), cpuMsByProcess(app.t.azurite.pid), cpuMsByProcess(process.pid, true)]);
  const before = await sample();
  const value = await fn();
  const after = await sample();
  const used: Record<string, number> = {};
  const label = (i: number, name: string) => (i === 0 ? (name === 'node' || name === 'MainThread' ? 'runtime: node' : `runtime: ${name}`) : i === 1 ? 'Azurite' : 'bench, model server and storage meter');
  after.forEach((tree, i) => {
    for (const [pid, { name, ms }] of tree) {
      const key = i === 0 && pid !== app.t.host.pid ? `runtime child: ${name}` : label(i, name);
      used[key] = (used[key] ?? 0) + ms - (before[i]?.get(pid)?.ms ?? 0);
    }
  });
  return [used, value];
}

// ---------- the scripted model's answers ----------

/**
 * When the scripted model answered each request. A `reply` function runs once the behaviour's
 * latency has passed, right before the answer is written, so wrapping it stamps the answer time.
 */
const answeredAt = new WeakMap<RecordedRequest, number>();
function answerRecorded(reply: (request: RecordedRequest) => string | ScriptedToolAnswer): (request: RecordedRequest) => string | ScriptedToolAnswer {
  return (request) => {
    answeredAt.set(request, clock());
    return reply(request);
  };
}

/** A message that starts with this gets one tool round: the model asks for get_current_time, then answers. */
const TIME_QUESTION = 'What time is it?';
const timeOrEcho = (request: RecordedRequest): string | ScriptedToolAnswer => {
  if (lastMessage(request)?.role === 'tool') return 'It is late. ';
  const asked = lastUserContent(request);
  return asked.startsWith(TIME_QUESTION) ? { toolCalls: [{ name: 'get_current_time', arguments: {} }] } : `re: ${asked}`;
};

// ---------- the app under test ----------

/** GET /api/chats/{id} as the bench reads it, with the status it was answered with. */
interface ChatView {
  status: number;
  totalMessages: number;
  recentMessages: { replyTo?: string; role: string; createdAt?: string }[];
  pendingMessages: unknown[];
  runningTurn?: unknown;
}
/** A GET query for messages newer than an hour from now: none, so the read is of the chat entity alone, not its history. */
const NOTHING_NEWER = () => `?timestampUTC=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`;

/** The app on one runtime, driven through its public API only (so both runtimes are measured alike). */
class Bench {
  constructor(readonly t: TestApp) {}
  get model(): ModelServer {
    return this.t.model;
  }
  get name(): string {
    return this.t.runtime.name;
  }
  url(p: string): string {
    return this.t.url(p);
  }
  async put(chatId: string): Promise<void> {
    const response = await fetch(this.url(`/api/chats/${chatId}`), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{"instructions":"Answer briefly."}' });
    if (response.status !== 201 && response.status !== 202) throw new Error(`PUT ${chatId}: ${response.status}`);
    if (response.status === 202) await this.drain([chatId], 0);
  }
  async post(chatId: string, message: string, query = '', headers: Record<string, string> = {}): Promise<Response> {
    return fetch(this.url(`/api/chats/${chatId}${query}`), { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ message }) });
  }
  async state(chatId: string, query = ''): Promise<ChatView> {
    const response = await fetch(this.url(`/api/chats/${chatId}${query}`));
    if (response.status !== 200) return { status: response.status, totalMessages: -1, recentMessages: [], pendingMessages: [] };
    return { status: 200, ...((await response.json()) as Omit<ChatView, 'status'>) };
  }
  /** A POST with wait that must be answered with the reply (200); returns the reply. */
  async turn(chatId: string, message: string): Promise<string> {
    const response = await this.post(chatId, message);
    if (response.status !== 200) throw new Error(`${this.name}: POST ${chatId} answered ${response.status}: ${await response.text()}`);
    return response.text();
  }
  /**
   * A turn (POST with wait) timed against the model calls it made, from the model server's arrival
   * times and the answer times `answerRecorded` stamps. `gaps` are its model-free stretches: POST →
   * first model request, each answer → the next request (a tool round), last answer → reply; the
   * overhead is their sum, the turn's time minus the model's.
   */
  async timedTurn(chatId: string, message: string): Promise<{ overhead: number; gaps: number[]; modelCalls: number }> {
    const asked = this.model.requests.length;
    const start = clock();
    await this.turn(chatId, message);
    const end = clock();
    const calls = this.model.requests.slice(asked);
    const points = [start, ...calls.flatMap((call) => [call.receivedAt, answeredAt.get(call) ?? Number.NaN]), end];
    const gaps = Array.from({ length: points.length / 2 }, (_, i) => (points[2 * i + 1] as number) - (points[2 * i] as number));
    return { overhead: gaps.reduce((sum, gap) => sum + gap, 0), gaps, modelCalls: calls.length };
  }
  /** Deletes a chat: 204, or 202 and then until it is gone. Returns the status DELETE answered. */
  async delete(chatId: string): Promise<number> {
    const response = await fetch(this.url(`/api/chats/${chatId}`), { method: 'DELETE' });
    await response.body?.cancel();
    if (response.status !== 204 && response.status !== 202) throw new Error(`${this.name}: DELETE ${chatId} answered ${response.status}`);
    while ((await this.state(chatId)).status !== 404) await new Promise((resolve) => setTimeout(resolve, 50));
    return response.status;
  }
  /**
   * Waits until every listed chat exists, holds at least `messages` messages (its system message
   * counts) and is idle: nothing queued and no turn running, so its last reply is stored too.
   */
  async drain(chatIds: string[], messages: number, timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(chatIds);
    const done = (s: ChatView) => s.totalMessages >= messages && s.pendingMessages.length === 0 && s.runningTurn === undefined;
    while (pending.size > 0) {
      await Promise.all([...pending].map(async (id) => (done(await this.state(id, NOTHING_NEWER())) ? pending.delete(id) : undefined)));
      if (pending.size > 0 && Date.now() > deadline) throw new Error(`${this.name}: ${pending.size} chats never reached ${messages} messages, e.g. ${[...pending][0] ?? ''}`);
      if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  /** Stored sizes (bytes of JSON) of the chat entity and its largest history page, via the host's Durable HTTP API. */
  async entitySizes(chatId: string): Promise<{ chatBytes: number; largestPageBytes: number; pages: number }> {
    const read = async (name: string, key: string) => {
      const stored = await readStoredEntity<{ pageCount: number }>(this.t, name, key);
      if (stored === undefined) throw new Error(`${this.name}: entity ${name}/${key} does not exist`);
      return stored;
    };
    const chat = await read('chat', chatId);
    const pages = chat.state.pageCount;
    let largestPageBytes = 0;
    await inParallel(Array.from({ length: pages }, (_, n) => n), 8, async (n) => {
      largestPageBytes = Math.max(largestPageBytes, (await read('chatHistoryPage', `${chatId}~${n}`)).bytes);
    });
    return { chatBytes: chat.bytes, largestPageBytes, pages };
  }
  /**
   * Waits until the model has been asked `count` more times than `since` (each turn calls it once),
   * then until the chats hold their replies: no polling while the turns run, so the wait does not
   * load the machine it measures, on either runtime.
   */
  async turnsDone(since: number, count: number, chatIds: string[], messagesEach: number): Promise<void> {
    // At least 3 minutes, and 4 turns a second at worst (the Functions host's 200 chats run at ~10).
    const timeoutMs = Math.max(180_000, count * 250);
    await this.model.waitForRequests(since + count, timeoutMs);
    await this.drain(chatIds, messagesEach, timeoutMs);
  }
  /** Posts answered 503 `not_accepted` (not stored within the app's wait) and posted again, since the start (at most 1,000). */
  notAccepted = 0;
  private posted = 0;
  /**
   * Posts without waiting for the reply. A post is answered once its message is stored; one not
   * stored in time (503 `not_accepted`) is posted again with the same Idempotency-Key, as a client
   * should, and counted. Anything else but 202 stops the run (a silent failure would skew every figure).
   */
  async accept(chatId: string, message: string): Promise<void> {
    const key = `bench-${this.posted++}`;
    for (;;) {
      const response = await this.post(chatId, message, '?wait=0', { 'Idempotency-Key': key });
      if (response.status === 202) {
        await response.body?.cancel();
        return;
      }
      const text = await response.text();
      if (response.status === 503 && text.includes('"not_accepted"') && this.notAccepted++ < 1_000) continue;
      const logged = this.t.host.logs().split('\n').filter((line) => /error|fail|exception/i.test(line)).slice(-20).join('\n');
      throw new Error(`${this.name}: POST ${chatId} answered ${response.status}: ${text}\nthe host's last error lines:\n${logged}`);
    }
  }
}

async function startApp(runtime: Runtime): Promise<Bench> {
  const t = await startTestApp({ CHAT_HISTORY_TOKEN_BUDGET: String(BUDGET), MODEL_TIMEOUT_MS: '120000', MODEL_MAX_RETRIES: '0' }, { runtime, meterStorage: true });
  return new Bench(t);
}

// ---------- the measurements (each returns its figures for one runtime) ----------

async function askOverhead(app: Bench) {
  app.model.setDefault({ reply: 'ok', usage: { prompt: 5, completion: 1 } });
  const direct = new OpenAI({ baseURL: app.model.baseURL, apiKey: 'x', maxRetries: 0 });
  const viaDirect = () => direct.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'ping' }], max_completion_tokens: 1000 });
  const viaApp = async () => {
    const response = await fetch(app.url('/api/ask'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"ping"}' });
    if (response.status !== 200) throw new Error(`ask: ${response.status}`);
    return response.text();
  };
  const rounds = scale(1000);
  for (let i = 0; i < 200; i++) await Promise.all([viaDirect(), viaApp()]); // warm-up: JIT, sockets
  const directTimes: number[] = [];
  const appTimes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // interleaved, so drift on the machine hits both sides alike
    directTimes.push((await timed(viaDirect))[0]);
    appTimes.push((await timed(viaApp))[0]);
  }
  const throughput = async (call: () => Promise<unknown>) => {
    const total = scale(2000);
    let next = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next++ < total) await call();
    }));
    return total / ((performance.now() - start) / 1000);
  };
  return { rounds, direct: summary(directTimes), app: summary(appTimes), directRps: await throughput(viaDirect), appRps: await throughput(viaApp) };
}

/**
 * Chat turn overhead (a turn's time minus the model's): turns without a tool and turns with one tool
 * round (get_current_time), interleaved on two chats, each split at its model calls; then a client
 * that posts with ?wait=0 and polls for the reply.
 */
async function turnOverhead(app: Bench) {
  app.model.setDefault({ reply: answerRecorded(timeOrEcho), latencyMs: MODEL_LATENCY_MS });
  const turns = scale(150);
  await Promise.all(['bench-wait', 'bench-tool', 'bench-poll'].map((id) => app.put(id)));
  const plain: Awaited<ReturnType<Bench['timedTurn']>>[] = [];
  const tool: typeof plain = [];
  for (let i = -10; i < turns; i++) {
    // The first ten of each are a warm-up: JIT, sockets, the runtime's queues.
    const p = await app.timedTurn('bench-wait', `turn ${i}`);
    const t = await app.timedTurn('bench-tool', `${TIME_QUESTION} (${i})`);
    if (p.modelCalls !== 1 || t.modelCalls !== 2) throw new Error(`${app.name}: turns called the model ${p.modelCalls} and ${t.modelCalls} times, not 1 and 2`);
    if (i < 0) continue;
    plain.push(p);
    tool.push(t);
  }
  const pollTimes: number[] = [];
  for (let i = 0; i < turns; i++) {
    const start = performance.now();
    const accepted = await app.post('bench-poll', `turn ${i}`, '?wait=0');
    const { messageId } = (await accepted.json()) as { messageId: string };
    const location = app.t.withKey(accepted.headers.get('location') ?? '');
    // A client that polls every 2 ms: measures when the reply becomes visible, not a client's Retry-After.
    for (;;) {
      const polled = (await (await fetch(location)).json()) as { recentMessages: { replyTo?: string }[] };
      if (polled.recentMessages.some((m) => m.replyTo === messageId)) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    pollTimes.push(performance.now() - start - MODEL_LATENCY_MS);
  }
  const gap = (samples: typeof plain, i: number) => summary(samples.map((s) => s.gaps.at(i) as number));
  return {
    turns,
    plain: { overhead: summary(plain.map((s) => s.overhead)), beforeModel: gap(plain, 0), afterModel: gap(plain, -1) },
    tool: { overhead: summary(tool.map((s) => s.overhead)), beforeModel: gap(tool, 0), toolRound: gap(tool, 1), afterModel: gap(tool, -1) },
    poll: summary(pollTimes),
  };
}

/** Storage traffic of turns posted at once to 10 chats (counted by the meter in front of Azurite). */
async function storageCost(app: Bench) {
  app.model.setDefault({ reply: 'ok' });
  const chats = Array.from({ length: 10 }, (_, i) => `storage-${i}`);
  await Promise.all(chats.map((id) => app.put(id)));
  const perChat = scale(30);
  const storage = app.t.storage;
  if (storage === undefined) throw new Error('the bench starts the app with a storage meter');
  const before = storage.snapshot();
  const asked = app.model.requests.length;
  await inParallel(chats.flatMap((id) => Array.from({ length: perChat }, (_, k) => [id, `m${k}`] as const)), 64, ([id, m]) => app.accept(id, m));
  await app.turnsDone(asked, chats.length * perChat, chats, perChat * 2);
  const used = storage.since(before);
  return { turns: chats.length * perChat, used };
}

/**
 * Throughput across chats: the same number of turns on 1 chat and spread over 20 (and 10 turns on
 * each of 200 chats, 2 with --quick), all posted at once with ?wait=0 over 64 connections (each post
 * answered once its message is stored), timed until every reply is stored: once end to end, once
 * processing only (posted while the model holds its answers, timed from their release).
 */
async function scaleAcrossChats(app: Bench) {
  app.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}`, latencyMs: MODEL_LATENCY_MS });
  const run = async (label: string, chats: number, turnsPerChat: number, held: boolean) => {
    const ids = Array.from({ length: chats }, (_, i) => `scale-${held ? 'held-' : ''}${label}-${i}`);
    await inParallel(ids, 32, (id) => app.put(id));
    const asked = app.model.requests.length;
    const notAccepted = app.notAccepted;
    const post = () => inParallel(ids.flatMap((id) => Array.from({ length: turnsPerChat }, (_, k) => [id, `t${k}`] as const)), 64, ([id, m]) => app.accept(id, m));
    const done = () => app.turnsDone(asked, chats * turnsPerChat, ids, turnsPerChat * 2);
    let wall: number;
    if (held) {
      // Posting out of the clock: every turn is accepted while the model holds its answers, then
      // the model is released and only the processing is timed.
      app.model.hold();
      await post();
      [wall] = await timed(async () => {
        app.model.release();
        await done();
      });
    } else {
      [wall] = await timed(async () => {
        await post();
        await done();
      });
    }
    const turns = chats * turnsPerChat;
    console.error(`bench: scale, ${held ? 'processing only' : 'end to end'}, ${chats} chats × ${turnsPerChat} turns: ${(wall / 1000).toFixed(1)} s`);
    return { label: `${chats} chat${chats > 1 ? 's' : ''} × ${turnsPerChat} turn${turnsPerChat > 1 ? 's' : ''}`, turns, wall, rate: turns / (wall / 1000), ideal: turnsPerChat * MODEL_LATENCY_MS, retried: app.notAccepted - notAccepted };
  };
  const total = scale(100);
  const runs = async (held: boolean) => [await run('one', 1, total, held), await run('twenty', 20, Math.max(1, Math.round(total / 20)), held), await run('many', 200, quick ? 2 : 10, held)];
  return { endToEnd: await runs(false), processing: await runs(true) };
}

async function promptGrowthAndReads(app: Bench) {
  app.model.setDefault({ reply: (r) => `Here is a short answer to: ${lastUserContent(r)}` });
  const chatId = 'growth';
  await app.put(chatId);
  const turns = 500;
  const firstRequest = app.model.requests.length;
  for (let i = 0; i < turns; i += 50) {
    const asked = app.model.requests.length;
    await Promise.all(Array.from({ length: 50 }, (_, k) => app.accept(chatId, `Question ${i + k}: what is interesting about the number ${i + k}?`)));
    await app.turnsDone(asked, 50, [chatId], (i + 50) * 2);
  }
  // The turns in the order the chat stored them, and the prompt the model received for each.
  const stored = (await (await fetch(app.url(`/api/chats/${chatId}`))).json()) as { instructions: string; recentMessages: { role: string; content: string; createdAt: string }[] };
  const promptFor = new Map(app.model.requests.slice(firstRequest).map((r: RecordedRequest) => [r.body.messages.at(-1)?.content, r.body.messages]));
  const tokens = (messages: readonly { content: string | null }[]) => messages.reduce((sum, m) => sum + countMessageTokens(m.content ?? ''), REPLY_PRIMING_TOKENS);
  const userIndexes = stored.recentMessages.flatMap((m, i) => (m.role === 'user' ? [i] : []));
  const sent = userIndexes.map((i) => promptFor.get(stored.recentMessages[i]!.content) ?? []);
  const sizes = sent.map(tokens);
  // The seed's extension sends the instructions and the whole history every turn (the instructions
  // once: the history's system message is that same text).
  const fullHistory = (turn: number) =>
    tokens([{ content: stored.instructions }, ...stored.recentMessages.slice(0, userIndexes[turn - 1]! + 1).filter((m) => m.role !== 'system')]);
  const prompts = [1, 10, 100, 500].map((k) => ({ turn: k, sent: sizes[k - 1]!, messages: sent[k - 1]!.length, full: fullHistory(k) }));

  const samples = scale(100);
  const read = async (query: string) => {
    const times: number[] = [];
    let count = 0;
    for (let i = 0; i < samples; i++) {
      const [t, state] = await timed(() => app.state(chatId, query));
      times.push(t);
      count = state.recentMessages.length;
    }
    return { ...summary(times), count };
  };
  const messages = stored.recentMessages;
  const tenFromEnd = messages[messages.length - 11]?.createdAt ?? new Date(0).toISOString();
  const reads = {
    all: await read(''),
    lastTen: await read(`?timestampUTC=${encodeURIComponent(tenFromEnd)}`),
    none: await read(`?timestampUTC=${encodeURIComponent(new Date().toISOString())}`),
  };
  return { messages: messages.length, prompts, largest: Math.max(...sizes), reads, samples };
}

/** About 1 KB of prose: the issue's "1 KB messages". */
const kilobyteMessage = (i: number) => `Question ${i}: ${'how would you summarise the last part of our conversation in plain words? '.repeat(14)}`.slice(0, 1000);

/**
 * Cost growth: one chat grown to 10, 1,000 and 10,000 messages of ~1 KB (replies ~1 KB too); at
 * each size, turns with wait are timed (split into before and after the model call, from the model
 * server's arrival times), and storage is counted per turn and per poll-sized read. The largest
 * entity state is read through the host's Durable HTTP API.
 */
async function costGrowth(app: Bench) {
  const chatId = 'cost-growth';
  await app.put(chatId);
  const sizes = quick ? [10, 1_000] : [10, 1_000, 10_000];
  const turns = scale(40);
  const storage = app.t.storage;
  if (storage === undefined) throw new Error('the bench starts the app with a storage meter');
  let total = (await app.state(chatId, NOTHING_NEWER())).totalMessages;
  let seeded = 0;
  const results = [];
  for (const size of sizes) {
    // Grow with the model at zero latency: back-to-back posts, 50 at a time.
    app.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}` });
    const [seedMs] = await timed(async () => {
      while (total < size) {
        const batch = Math.min(50, Math.ceil((size - total) / 2));
        const asked = app.model.requests.length;
        await Promise.all(Array.from({ length: batch }, () => app.accept(chatId, kilobyteMessage(seeded++))));
        total += batch * 2;
        await app.turnsDone(asked, batch, [chatId], total);
      }
    });
    app.model.setDefault({ reply: answerRecorded((r) => `re: ${lastUserContent(r)}`), latencyMs: MODEL_LATENCY_MS });
    for (let i = 0; i < 3; i++) await app.turn(chatId, kilobyteMessage(seeded++));
    total += 6;
    const before = storage.snapshot();
    const overhead: number[] = [];
    const beforeModel: number[] = [];
    const afterModel: number[] = [];
    const [cpu] = await cpuDuring(app, async () => {
      for (let i = 0; i < turns; i++) {
        const { overhead: o, gaps } = await app.timedTurn(chatId, kilobyteMessage(seeded++));
        overhead.push(o);
        beforeModel.push(gaps[0] as number);
        afterModel.push(gaps.at(-1) as number);
      }
    });
    total += turns * 2;
    const perTurn = storage.since(before);
    // What a waiting request's poll reads: the chat entity alone (a timestampUTC after every message).
    const polls = 20;
    const beforeReads = storage.snapshot();
    for (let i = 0; i < polls; i++) await app.state(chatId, NOTHING_NEWER());
    const perPoll = storage.since(beforeReads);
    const [fullReadMs, full] = await timed(() => app.state(chatId));
    if (full.totalMessages !== total || full.recentMessages.length !== total) throw new Error(`${app.name}: read ${full.recentMessages.length} of ${full.totalMessages} messages, expected ${total}`);
    const entities = await app.entitySizes(chatId);
    results.push({
      size,
      seedMs,
      overhead: summary(overhead),
      beforeModel: summary(beforeModel),
      afterModel: summary(afterModel),
      writtenPerTurn: perTurn.bytesSent / turns,
      readPerTurn: perTurn.bytesReceived / turns,
      requestsPerTurn: perTurn.requests / turns,
      readPerPoll: perPoll.bytesReceived / polls,
      requestsPerPoll: perPoll.requests / polls,
      fullReadMs,
      cpuPerTurn: Object.fromEntries(Object.entries(cpu).map(([name, msUsed]) => [name, msUsed / turns])),
      messages: total,
      ...entities,
    });
  }
  return { turns, results };
}

/**
 * Streamed turns: time to the first delta through the app against a direct streaming call to the
 * same model (both with a model that takes MODEL_TTFT_MS to its first token), for a turn without
 * tools and one with a tool round (two model calls before the answer's first delta, each subtracted
 * as the direct call's time); and a 1,000-token reply end to end against the model's own duration,
 * with the stream records it wrote.
 */
const MODEL_TTFT_MS = 100;
async function streamedTurns(app: Bench) {
  const chatId = 'stream-bench';
  await app.put(chatId);
  const direct = new OpenAI({ baseURL: app.model.baseURL, apiKey: 'x', maxRetries: 0 });
  const shortReply = { stream: Array.from({ length: 20 }, (_, i) => `word${i} `), chunkDelayMs: 5, firstChunkDelayMs: MODEL_TTFT_MS };
  // Streamed too: the tool calls (then the answer) come MODEL_TTFT_MS after each request.
  const toolRound = { reply: timeOrEcho, latencyMs: MODEL_TTFT_MS };
  const directFirst = async () => {
    app.model.setDefault(shortReply);
    const start = performance.now();
    const stream = await direct.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'ping' }], stream: true });
    let first = Number.NaN;
    for await (const chunk of stream) if (Number.isNaN(first) && (chunk.choices[0]?.delta.content ?? '') !== '') first = performance.now() - start;
    return first;
  };
  let n = 0;
  /** A streamed POST read to its end: the first delta's time, the time to the model's first request, and the events before that delta. */
  const appTurn = async (message: string) => {
    const messageId = `s-bench-${n++}`;
    const asked = app.model.requests.length;
    const start = clock();
    const response = await fetch(app.url(`/api/chats/${chatId}`), { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', 'Idempotency-Key': messageId }, body: JSON.stringify({ message }) });
    if (response.status !== 200) throw new Error(`${app.name}: streamed POST answered ${response.status}: ${await response.text()}`);
    let first = Number.NaN;
    const before: string[] = [];
    let last = '';
    for await (const e of sseEvents(response)) {
      if (Number.isNaN(first) && e.event === 'delta') first = e.receivedAt - start;
      if (Number.isNaN(first)) before.push(e.event);
      last = e.event;
    }
    if (last !== 'done') throw new Error(`${app.name}: a streamed turn ended with '${last}'`);
    return { first, total: clock() - start, messageId, before, toModel: (app.model.requests[asked]?.receivedAt ?? Number.NaN) - start };
  };
  const plainTurn = () => {
    app.model.setDefault(shortReply);
    return appTurn('stream me');
  };
  const toolTurn = async () => {
    app.model.setDefault(toolRound);
    const turn = await appTurn(TIME_QUESTION);
    if (turn.before.join(',') !== 'message,tool-call,tool-result') throw new Error(`${app.name}: a streamed tool turn sent ${turn.before.join(', ')} before its first delta`);
    return turn;
  };
  const samples = scale(40);
  const directTimes: number[] = [];
  const plain: Awaited<ReturnType<typeof appTurn>>[] = [];
  const tool: typeof plain = [];
  for (let i = -3; i < samples; i++) {
    // Interleaved, so drift on the machine hits all three alike; the first three are a warm-up.
    const sample = [await directFirst(), await plainTurn(), await toolTurn()] as const;
    if (i < 0) continue;
    directTimes.push(sample[0]);
    plain.push(sample[1]);
    tool.push(sample[2]);
  }
  // A 1,000-token reply, a token every 5 ms.
  const longReply = { stream: Array.from({ length: 1_000 }, (_, i) => `t${i % 10} `), chunkDelayMs: 5, firstChunkDelayMs: MODEL_TTFT_MS };
  app.model.setDefault(longReply);
  const [modelMs] = await timed(async () => {
    const stream = await direct.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'long' }], stream: true });
    for await (const _chunk of stream) {
      // drained
    }
  });
  const long = await appTurn('long');
  const records = await countStreamRecords(app.t, chatId, long.messageId);
  app.model.setDefault({ reply: 'ok' });
  const firsts = (turns: typeof plain) => turns.map((t) => t.first);
  return {
    samples,
    direct: summary(directTimes),
    app: summary(firsts(plain)),
    overhead: summary(plain.map((t, i) => t.first - (directTimes[i] as number))),
    toModel: summary(plain.map((t) => t.toModel)),
    tool: summary(firsts(tool)),
    toolOverhead: summary(tool.map((t, i) => t.first - 2 * (directTimes[i] as number))),
    long: { modelMs, appMs: long.total, firstMs: long.first, records },
  };
}

/**
 * Task hub rows a finished turn leaves behind once finished turns are purged: the rows (settled)
 * before the chats exist, after the first and the Nth turn without tools on one chat, the same with
 * a tool round on a second chat, and after deleting both, by table. What a chat keeps: its entity,
 * its last turn's instance (purged when the next turn finishes), and a history page entity for each
 * page its history has filled (the tool chat's longer history fills one within 50 turns).
 */
async function taskHubRows(app: Bench) {
  app.model.setDefault({ reply: timeOrEcho });
  const turns = scale(50);
  const count = async () => countByTable(await settledTaskHubRows(app.t));
  const before = await count();
  const chat = async (chatId: string, message: (i: number) => string) => {
    await app.put(chatId);
    await app.turn(chatId, message(0));
    const first = await count();
    for (let i = 1; i < turns; i++) await app.turn(chatId, message(i));
    return { first, last: await count() };
  };
  const plain = await chat('rows-plain', (i) => `turn ${i}`);
  const tool = await chat('rows-tool', (i) => `${TIME_QUESTION} (${i})`);
  const deletes = [await app.delete('rows-plain'), await app.delete('rows-tool')];
  const deleted = await count();
  return { turns, before, plain, tool, deleted, deletes };
}

/**
 * GET /api/chats for one user: the first page (limit 20) and a walk through every page (limit 100),
 * before and after that user has 1,000 chats more. The chats are made with PUT, as a client would.
 */
async function chatList(app: Bench) {
  const chats = scale(1000);
  const listed = async (query: string) => {
    const response = await fetch(app.url(`/api/chats${query}`));
    if (response.status !== 200) throw new Error(`${app.name}: GET /api/chats${query} answered ${response.status}`);
    return (await response.json()) as { chats: unknown[]; continuationToken?: string };
  };
  const count = async () => {
    let total = 0;
    let token: string | undefined;
    do {
      const page = await listed(`?limit=100${token === undefined ? '' : `&continuationToken=${encodeURIComponent(token)}`}`);
      total += page.chats.length;
      token = page.continuationToken;
    } while (token !== undefined);
    return total;
  };
  // The alternative to the index: the Durable HTTP API's entity listing. It filters by entity name only,
  // so a user's first page needs every chat's state (to pick the user's and order them by activity).
  const entityListing = async () => {
    let total = 0;
    let token: string | undefined;
    do {
      const response = await fetch(`${app.t.host.url}/runtime/webhooks/durabletask/entities/chat?fetchState=true&top=100`, {
        headers: { ...app.t.adminHeaders(), ...(token === undefined ? {} : { 'x-ms-continuation-token': token }) },
      });
      if (response.status !== 200) throw new Error(`${app.name}: the entity listing answered ${response.status}`);
      total += ((await response.json()) as unknown[]).length;
      token = response.headers.get('x-ms-continuation-token') ?? undefined;
    } while (token !== undefined);
    return total;
  };
  const sample = async () => {
    const firstPage: number[] = [];
    const walk: number[] = [];
    const entityWalk: number[] = [];
    for (let i = 0; i < 30; i++) firstPage.push((await timed(() => listed('?limit=20')))[0]);
    for (let i = 0; i < 5; i++) walk.push((await timed(count))[0]);
    for (let i = 0; i < 5; i++) entityWalk.push((await timed(entityListing))[0]);
    return { chats: await count(), entities: await entityListing(), firstPage: summary(firstPage), walk: summary(walk), entityWalk: summary(entityWalk) };
  };
  const before = await sample();
  await inParallel(Array.from({ length: chats }, (_, i) => `list-${i}`), 16, (chatId) => app.put(chatId));
  // The list follows the chats by signals: wait until it shows them all.
  for (const deadline = Date.now() + 300_000; (await count()) < before.chats + chats; ) {
    if (Date.now() > deadline) throw new Error(`${app.name}: the list did not reach ${before.chats + chats} chats`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return { added: chats, before, after: await sample() };
}

/** Rows by table name (listTaskHubRows gives `table partition row`), and `total`. */
function countByTable(rows: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>([['total', rows.length]]);
  for (const row of rows) {
    const table = row.slice(0, row.indexOf(' '));
    counts.set(table, (counts.get(table) ?? 0) + 1);
  }
  return counts;
}

/** `after − before` per table, where it is not zero: `+12 History, +1 Instances`. */
function rowChanges(before: Map<string, number>, after: Map<string, number>): string {
  const tables = [...new Set([...before.keys(), ...after.keys()])].filter((t) => t !== 'total').sort();
  const changes = tables.map((t) => [(after.get(t) ?? 0) - (before.get(t) ?? 0), t] as const).filter(([d]) => d !== 0);
  return changes.length === 0 ? 'none' : changes.map(([d, t]) => `${d > 0 ? '+' : ''}${d} ${t}`).join(', ');
}

// ---------- the previous design's turn overhead ----------

/**
 * The previous design's turn overhead (turns run inside the chat entity, until commit 024c2ad), POST
 * with wait, p50 / p99, as recorded by `npm run bench` on 2026-12-01 with both runtimes in one run
 * (then in the README's "Performance", now in docs/performance.md): shown when no --baseline is
 * measured in the run.
 */
const RECORDED_BASELINE = { commit: '024c2ad', date: '2026-12-01', local: { p50: 33.6, p99: 54 }, real: { p50: 88.5, p99: 249 } };

interface Baseline {
  commit: string;
  /** Measured in this run, or recorded earlier (README). */
  measured: boolean;
  p50: number;
  p99: number;
}

/** An earlier commit in a temporary git worktree, built with this checkout's node_modules, to run its own bench. */
async function prepareBaseline(commit: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `bench-baseline-${commit.replace(/[^\w.-]/g, '_')}-`));
  execFileSync('git', ['-C', REPO_ROOT, 'worktree', 'add', '--detach', dir, commit], { stdio: 'ignore' });
  const modules = path.join(dir, 'node_modules');
  const remove = async () => {
    // The link first, so nothing removing the worktree can reach into this checkout's node_modules.
    await unlink(modules).catch(() => undefined);
    execFileSync('git', ['-C', REPO_ROOT, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
  };
  try {
    await symlink(path.join(REPO_ROOT, 'node_modules'), modules);
    // The Functions extensions already restored here, so staging the package there needs no NuGet.
    await cp(path.join(REPO_ROOT, '.realhost', 'extensions'), path.join(dir, '.realhost', 'extensions'), { recursive: true }).catch(() => undefined);
    execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (err) {
    await remove();
    throw err;
  }
  return { dir, remove };
}

/** The `turn` section of the bench in `dir` on one runtime (with this run's --quick and --host-json): its "POST with wait" figure. */
async function measureBaseline(dir: string, commit: string, runtime: RuntimeName): Promise<Baseline> {
  const args = ['tsx', 'scripts/bench.ts', '--only=turn', `--runtime=${runtime}`, ...(quick ? ['--quick'] : []), ...(hostJsonArg === undefined ? [] : [`--host-json=${hostJsonArg}`])];
  console.error(`bench: ${commit} (the baseline) on the ${runtime} runtime ...`);
  const { stdout } = await promisify(execFile)('npx', args, { cwd: dir, maxBuffer: 16 * 2 ** 20 });
  const row = /\| POST with wait \(200 \+ reply\): p50 \/ p99 \| ([\d.]+) ms \/ ([\d.]+) ms \|/.exec(stdout);
  if (row === null) throw new Error(`the bench of ${commit} printed no turn figure:\n${stdout}`);
  return { commit, measured: true, p50: Number(row[1]), p99: Number(row[2]) };
}

interface Figures {
  runtime: Runtime;
  ask?: Awaited<ReturnType<typeof askOverhead>>;
  turn?: Awaited<ReturnType<typeof turnOverhead>>;
  storage?: Awaited<ReturnType<typeof storageCost>>;
  scale?: Awaited<ReturnType<typeof scaleAcrossChats>>;
  growth?: Awaited<ReturnType<typeof promptGrowthAndReads>>;
  cost?: Awaited<ReturnType<typeof costGrowth>>;
  stream?: Awaited<ReturnType<typeof streamedTurns>>;
  rows?: Awaited<ReturnType<typeof taskHubRows>>;
  list?: Awaited<ReturnType<typeof chatList>>;
  /** The previous design's turn overhead on the same runtime, beside `turn`. */
  baseline?: Baseline;
  memoryMiB: { runtime: number; azurite: number };
}

async function measure(runtime: Runtime): Promise<Figures> {
  console.error(`bench: ${runtime.description} ...`);
  const app = await startApp(runtime);
  try {
    const run = <T>(section: (typeof SECTIONS)[number], fn: (app: Bench) => Promise<T>) => (selected.has(section) ? fn(app) : Promise.resolve(undefined));
    const ask = await run('ask', askOverhead);
    const turn = await run('turn', turnOverhead);
    const storage = await run('storage', storageCost);
    const scaleFigures = await run('scale', scaleAcrossChats);
    const growth = await run('growth', promptGrowthAndReads);
    const cost = await run('cost', costGrowth);
    const stream = await run('stream', streamedTurns);
    const rows = await run('rows', taskHubRows);
    const list = await run('list', chatList);
    const memoryMiB = { runtime: await peakMemoryMiB(app.t.host.pid), azurite: await peakMemoryMiB(app.t.azurite.pid) };
    return { runtime, memoryMiB, ...(ask && { ask }), ...(turn && { turn }), ...(storage && { storage }), ...(scaleFigures && { scale: scaleFigures }), ...(growth && { growth }), ...(cost && { cost }), ...(stream && { stream }), ...(rows && { rows }), ...(list && { list }) };
  } finally {
    await app.t.stop();
  }
}

// ---------- the report: one column per runtime ----------

function report(all: Figures[]): void {
  const names = all.map((f) => f.runtime.name === 'local' ? 'local host' : 'Functions host');
  const each = <T>(pick: (f: Figures) => T) => all.map(pick);
  const a0 = all[0]!;

  if (a0.ask !== undefined) {
    table(`ask overhead (zero-latency model; ${a0.ask!.rounds} sequential calls each, direct and through the app interleaved; throughput with 32 concurrent clients)`, ['figure', ...names], [
      ['direct openai client → model, p50', ...each((f) => ms(f.ask!.direct.p50))],
      ['client → app → model, p50', ...each((f) => ms(f.ask!.app.p50))],
      ['app overhead p50 / p99', ...each((f) => `${ms(f.ask!.app.p50 - f.ask!.direct.p50)} / ${ms(f.ask!.app.p99 - f.ask!.direct.p99)}`)],
      ['ratio app / direct, p50', ...each((f) => (f.ask!.app.p50 / f.ask!.direct.p50).toFixed(2))],
      ['req/s @32: direct / app', ...each((f) => `${f.ask!.directRps.toFixed(0)} / ${f.ask!.appRps.toFixed(0)}`)],
    ]);
  }

  if (a0.turn !== undefined) {
    const p50p99 = (x: { p50: number; p99: number }) => `${ms(x.p50)} / ${ms(x.p99)}`;
    const baseline = (f: Figures) => f.baseline ?? { commit: RECORDED_BASELINE.commit, measured: false, ...RECORDED_BASELINE[f.runtime.name] };
    const baselineSource = (b: Baseline) => (b.measured ? 'measured in this run' : `recorded ${RECORDED_BASELINE.date} (docs/performance.md), not this run`);
    table(`chat turn overhead (model fixed at ${MODEL_LATENCY_MS} ms; a turn's time from POST to reply minus the model's, from the model server's arrival and answer times; ${a0.turn.turns} turns of each kind, interleaved)`, ['figure', ...names], [
      ['without tools, POST with wait: p50 / p99', ...each((f) => p50p99(f.turn!.plain.overhead))],
      ['  before the model (POST → model request) / after it (answer → reply), p50', ...each((f) => `${ms(f.turn!.plain.beforeModel.p50)} / ${ms(f.turn!.plain.afterModel.p50)}`)],
      ['with one tool round (get_current_time), POST with wait: p50 / p99', ...each((f) => p50p99(f.turn!.tool.overhead))],
      ['  before the model / the tool round (answer → next model request) / after it, p50', ...each((f) => [f.turn!.tool.beforeModel, f.turn!.tool.toolRound, f.turn!.tool.afterModel].map((x) => ms(x.p50)).join(' / '))],
      ["a tool round's extra overhead (with − without), p50", ...each((f) => ms(f.turn!.tool.overhead.p50 - f.turn!.plain.overhead.p50))],
      ['  in model-free hops (extra ÷ without tools, p50)', ...each((f) => `${((f.turn!.tool.overhead.p50 - f.turn!.plain.overhead.p50) / f.turn!.plain.overhead.p50).toFixed(2)} × a tool-less turn's overhead`)],
      ['previous design (turns in the chat entity), without tools, POST with wait: p50 / p99', ...each((f) => `${p50p99(baseline(f))} (${baseline(f).commit}, ${baselineSource(baseline(f))})`)],
      ['  this design ÷ previous, without tools, p50', ...each((f) => `${(f.turn!.plain.overhead.p50 / baseline(f).p50).toFixed(2)}×`)],
      ['without tools, POST ?wait=0 (202), then GET every 2 ms: p50 / p99', ...each((f) => p50p99(f.turn!.poll))],
    ]);
  }

  if (a0.storage !== undefined) {
    const perTurn = (f: Figures, n: number) => (n / f.storage!.turns);
    table(`storage per turn (10 chats, ${a0.storage!.turns} turns posted at once; every request to Azurite counted by a proxy, the runtime's own queue polling included)`, ['figure', ...names], [
      ['storage requests per turn', ...each((f) => perTurn(f, f.storage!.used.requests).toFixed(2))],
      ['  blob / queue / table', ...each((f) => (['blob', 'queue', 'table'] as const).map((s) => perTurn(f, f.storage!.used.byService[s].requests).toFixed(2)).join(' / '))],
      ['bytes written per turn', ...each((f) => perTurn(f, f.storage!.used.bytesSent).toFixed(0))],
      ['bytes read per turn', ...each((f) => perTurn(f, f.storage!.used.bytesReceived).toFixed(0))],
    ]);
  }

  if (a0.scale !== undefined) {
    const scale0 = a0.scale;
    const scaleRows = (kind: 'endToEnd' | 'processing') => [
      ...scale0[kind].map((r, i) => [`${r.label}: turns/s (ideal ${(r.turns / (r.ideal / 1000)).toFixed(0)}; wall / ideal)`, ...each((f) => { const x = f.scale![kind][i]!; return `${x.rate.toFixed(1)} (${(x.wall / x.ideal).toFixed(2)}×${x.retried > 0 ? `; ${x.retried} posts not stored within the app's wait, posted again` : ''})`; })]),
      ...scale0[kind].slice(1).map((r, i) => [`ratio ${r.label.split(' ×')[0]} / 1 chat (turns/s)`, ...each((f) => `${(f.scale![kind][i + 1]!.rate / f.scale![kind][0]!.rate).toFixed(1)}×`)]),
    ];
    table(`scale across chats, end to end (model fixed at ${MODEL_LATENCY_MS} ms; 1 and 20 chats with the same ${scale0.endToEnd[0]!.turns} turns in all; all turns posted at once with ?wait=0 over 64 connections; ideal = one chat's turns back to back)`, ['run', ...names], scaleRows('endToEnd'));
    table(`scale across chats, processing only (turns accepted first, then the ${MODEL_LATENCY_MS} ms model released)`, ['run', ...names], scaleRows('processing'));

  }

  if (a0.growth !== undefined) {
    table(`prompt tokens per turn (one chat, 500 turns, CHAT_HISTORY_TOKEN_BUDGET=${BUDGET}, o200k tokenizer)`, ['turn', ...names.map((n) => `sent (${n})`), 'messages in prompt', 'full history (seed)'], [
      ...a0.growth!.prompts.map((p, i) => [p.turn, ...each((f) => f.growth!.prompts[i]!.sent), p.messages, p.full]),
      ['largest ever sent', ...each((f) => f.growth!.largest), '', `budget ${BUDGET}`],
    ]);

    table(`GET /api/chats/{id} on a ${a0.growth!.messages}-message chat (${a0.growth!.samples} reads each): p50 / p99`, ['query', 'messages returned', ...names], [
      ['no timestampUTC', a0.growth!.reads.all.count, ...each((f) => `${ms(f.growth!.reads.all.p50)} / ${ms(f.growth!.reads.all.p99)}`)],
      ['timestampUTC = the 11th newest message', a0.growth!.reads.lastTen.count, ...each((f) => `${ms(f.growth!.reads.lastTen.p50)} / ${ms(f.growth!.reads.lastTen.p99)}`)],
      ['timestampUTC = now', a0.growth!.reads.none.count, ...each((f) => `${ms(f.growth!.reads.none.p50)} / ${ms(f.growth!.reads.none.p99)}`)],
    ]);
  }

  if (a0.cost !== undefined) {
    const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    const costRows = (label: string, pick: (r: NonNullable<Figures['cost']>['results'][number]) => string) =>
      a0.cost!.results.map((r, i) => [`${label} at ${r.size.toLocaleString('en-US')}`, ...each((f) => (f.cost!.results[i] === undefined ? '' : pick(f.cost!.results[i]!)))]);
    table(`cost growth: one chat at 10, 1,000 and 10,000 messages of ~1 KB (model fixed at ${MODEL_LATENCY_MS} ms; ${a0.cost!.turns} turns with wait at each size; storage counted by the proxy)`, ['figure (history size in messages)', ...names], [
      ...costRows('turn overhead p50 / p99', (r) => `${ms(r.overhead.p50)} / ${ms(r.overhead.p99)}`),
      ...costRows('  before the model call p50 (POST → model request)', (r) => ms(r.beforeModel.p50)),
      ...costRows('  after the model call p50 (model reply → POST answered)', (r) => ms(r.afterModel.p50)),
      ['turn overhead at the largest size / at 10', ...each((f) => (f.cost!.results.at(-1)!.overhead.p50 / f.cost!.results[0]!.overhead.p50).toFixed(2))],
      ...costRows('storage per turn: requests / bytes written / bytes read', (r) => `${r.requestsPerTurn.toFixed(1)} / ${kib(r.writtenPerTurn)} / ${kib(r.readPerTurn)}`),
      ...costRows('one poll (GET newer than now): storage requests / bytes read', (r) => `${r.requestsPerPoll.toFixed(1)} / ${kib(r.readPerPoll)}`),
      ...costRows('chat entity state / largest page / pages', (r) => `${kib(r.chatBytes)} / ${kib(r.largestPageBytes)} / ${r.pages}`),
      ...costRows('CPU per turn by process', (r) => Object.entries(r.cpuPerTurn).filter(([, x]) => x >= 0.05).map(([name, x]) => `${name} ${x.toFixed(1)} ms`).join('; ')),
    ...costRows('GET of the whole history', (r) => `${ms(r.fullReadMs)} (${r.messages} messages)`),
      ...costRows('time to grow the chat to this size (model at 0 ms)', (r) => `${(r.seedMs / 1000).toFixed(1)} s`),
    ]);
  }

  if (a0.stream !== undefined) {
    table(`streamed chat turns (Accept: text/event-stream; the model takes ${MODEL_TTFT_MS} ms to its first token; ${a0.stream.samples} turns, each beside a direct streaming call)`, ['figure', ...names], [
      ['time to first delta, direct call to the model p50 / p99', ...each((f) => `${ms(f.stream!.direct.p50)} / ${ms(f.stream!.direct.p99)}`)],
      ['time to first delta through the app (POST → first delta event) p50 / p99', ...each((f) => `${ms(f.stream!.app.p50)} / ${ms(f.stream!.app.p99)}`)],
      ['the app\'s addition (through the app − direct) p50 / p99', ...each((f) => `${ms(f.stream!.overhead.p50)} / ${ms(f.stream!.overhead.p99)}`)],
      ['  of which before the model (POST → model request) p50', ...each((f) => ms(f.stream!.toModel.p50))],
      ['with one tool round (tool-call, tool-result, then the answer): POST → first delta p50 / p99', ...each((f) => `${ms(f.stream!.tool.p50)} / ${ms(f.stream!.tool.p99)}`)],
      ['  the app\'s addition (through the app − 2 × direct) p50 / p99', ...each((f) => `${ms(f.stream!.toolOverhead.p50)} / ${ms(f.stream!.toolOverhead.p99)}`)],
      ['1,000-token reply: model alone / through the app end to end', ...each((f) => `${ms(f.stream!.long.modelMs)} / ${ms(f.stream!.long.appMs)} (${(f.stream!.long.appMs / f.stream!.long.modelMs).toFixed(2)}×)`)],
      ['1,000-token reply: stream records written (one storage write each)', ...each((f) => String(f.stream!.long.records))],
    ]);
  }

  if (a0.rows !== undefined) {
    const total = (rows: Map<string, number>) => rows.get('total') ?? 0;
    const chatRows = (kind: 'plain' | 'tool', label: string) => {
      const pick = (f: Figures) => ({ from: kind === 'plain' ? f.rows!.before : f.rows!.plain.last, ...f.rows![kind] });
      return [
        [`${label}: rows added after the 1st / the Nth turn`, ...each((f) => { const r = pick(f); return `+${total(r.first) - total(r.from)} / +${total(r.last) - total(r.from)} (${rowChanges(r.from, r.last)})`; })],
        [`  per turn: (after N − before) / N; and each turn after the 1st, (after N − after 1st) / (N − 1)`, ...each((f) => { const r = pick(f); const n = f.rows!.turns; return `${((total(r.last) - total(r.from)) / n).toFixed(2)}; ${((total(r.last) - total(r.first)) / (n - 1)).toFixed(2)}`; })],
      ];
    };
    table(`task hub rows after finished turns (settled counts of every table but the stream table; N = ${a0.rows.turns} turns with wait on a new chat, then N with a tool round on a second new chat, then both deleted)`, ['figure', ...names], [
      ['rows before the chats exist', ...each((f) => String(total(f.rows!.before)))],
      ...chatRows('plain', 'without tools'),
      ...chatRows('tool', 'with one tool round'),
      ['after deleting both chats: rows − rows before (DELETE answered; by table)', ...each((f) => `${total(f.rows!.deleted) - total(f.rows!.before)} (${f.rows!.deletes.join(', ')}; ${rowChanges(f.rows!.before, f.rows!.deleted)})`)],
    ]);
  }

  if (a0.list !== undefined) {
    const side = (which: 'before' | 'after') => [
      [`${which === 'before' ? 'before' : `after ${a0.list!.added} more chats`}: chats listed`, ...each((f) => String(f.list![which].chats))],
      ['  first page (limit 20): p50 / p99', ...each((f) => `${ms(f.list![which].firstPage.p50)} / ${ms(f.list![which].firstPage.p99)}`)],
      ['  every page (limit 100, following the continuation token): p50', ...each((f) => ms(f.list![which].walk.p50))],
      [`  the alternative: every chat entity with its state from the Durable HTTP API (top=100): entities, p50`, ...each((f) => `${f.list![which].entities}, ${ms(f.list![which].entityWalk.p50)}`)],
    ];
    table('chat list of one user (GET /api/chats; the chats made with PUT; 30 first pages and 5 walks each)', ['figure', ...names], [
      ...side('before'),
      ...side('after'),
      ['first page after ÷ before, p50', ...each((f) => `${(f.list!.after.firstPage.p50 / f.list!.before.firstPage.p50).toFixed(2)}×`)],
      ['after: the alternative ÷ first page, p50', ...each((f) => `${(f.list!.after.entityWalk.p50 / f.list!.after.firstPage.p50).toFixed(1)}×`)],
    ]);
  }

  table('peak memory during the run (VmHWM)', ['process', ...names], [
    ['the runtime (local host process; Functions host process, without its Node worker)', ...each((f) => `${f.memoryMiB.runtime.toFixed(0)} MiB`)],
    ['Azurite (in memory)', ...each((f) => `${f.memoryMiB.azurite.toFixed(0)} MiB`)],
  ]);
}

function mergeJson(base: unknown, patch: unknown): unknown {
  if (typeof base !== 'object' || base === null || typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const merged: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(patch)) merged[key] = mergeJson(merged[key], value);
  return merged;
}

async function main(): Promise<void> {
  console.log(`# npm run bench${quick ? ' --quick' : ''}`);
  console.log(`\nMachine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString()}`);
  const runtimes: Runtime[] = runtimeArg === 'real' ? [] : [localRuntime()];
  const real = realHostSetup();
  if (runtimeArg === 'local') {
    // the local host only
  } else if (real.kind === 'unavailable') {
    console.log(`\nThe Functions host is not measured: ${real.reason}.`);
  } else {
    const appRoot = path.join(REPO_ROOT, '.realhost', 'bench-app');
    stageRealHostPackage(appRoot);
    if (hostJsonArg !== undefined) {
      const hostJsonPath = path.join(appRoot, 'host.json');
      const merged = mergeJson(JSON.parse(await readFile(hostJsonPath, 'utf8')), JSON.parse(hostJsonArg));
      await writeFile(hostJsonPath, JSON.stringify(merged, null, 2));
      console.log(`\nThe Functions host runs with host.json settings merged in: ${hostJsonArg}`);
    }
    runtimes.push(realRuntime(appRoot));
  }
  console.log(`Runtimes, measured one after the other in this run: ${runtimes.map((r) => r.description).join('; ')}.`);
  const baseline = baselineArg !== undefined && selected.has('turn') ? await prepareBaseline(baselineArg) : undefined;
  const figures: Figures[] = [];
  try {
    for (const runtime of runtimes) {
      const figure = await measure(runtime);
      if (baseline !== undefined) figure.baseline = await measureBaseline(baseline.dir, baselineArg!, runtime.name);
      figures.push(figure);
    }
  } finally {
    await baseline?.remove();
  }
  report(figures);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
