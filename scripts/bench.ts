/**
 * `npm run bench`: measures the app against the model it wraps, all in one run on this machine —
 * the compiled app in the local host, in-memory Azurite, and the scripted model server on loopback.
 * Prints tables; asserts nothing (figures go to the README's "Performance" section).
 *
 *   npm run bench                # everything (about 2-3 minutes)
 *   npm run bench -- --quick     # fewer samples, for a smoke run
 */
import { mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { countMessageTokens, REPLY_PRIMING_TOKENS } from '../src/chat/tokens';
import { startAzurite, type AzuriteHandle } from '../test/support/azurite';
import { REPO_ROOT, startHost, type HostHandle } from '../test/support/host';
import { lastUserContent, startModelServer, type ModelServer, type RecordedRequest } from '../test/support/model-server';

const quick = process.argv.includes('--quick');
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
/** Peak resident memory of a process (VmHWM), in MiB. */
async function peakMemoryMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

// ---------- the app under test ----------

interface Stats {
  storage: { requests: number; byKind: Record<string, number> };
  entities: { operationsProcessed: number; batches: number };
}

class Bench {
  constructor(
    readonly host: HostHandle,
    readonly model: ModelServer,
  ) {}
  url(p: string): string {
    return `${this.host.url}${p}`;
  }
  async stats(): Promise<Stats> {
    return (await (await fetch(this.url('/admin/devhost/stats'))).json()) as Stats;
  }
  async put(chatId: string): Promise<void> {
    const response = await fetch(this.url(`/api/chats/${chatId}`), { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{"instructions":"Answer briefly."}' });
    if (response.status !== 201) throw new Error(`PUT ${chatId}: ${response.status}`);
  }
  async post(chatId: string, message: string, query = ''): Promise<Response> {
    return fetch(this.url(`/api/chats/${chatId}${query}`), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message }) });
  }
  async state(chatId: string, query = ''): Promise<{ totalMessages: number; recentMessages: { replyTo?: string; role: string }[] }> {
    return (await (await fetch(this.url(`/api/chats/${chatId}${query}`))).json()) as { totalMessages: number; recentMessages: { replyTo?: string; role: string }[] };
  }
  /** Waits until every listed chat holds `messages` messages. */
  async drain(chatIds: string[], messages: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(chatIds);
    while (pending.size > 0) {
      await Promise.all([...pending].map(async (id) => ((await this.state(id)).totalMessages >= messages ? pending.delete(id) : undefined)));
      if (pending.size > 0 && Date.now() > deadline) throw new Error(`${pending.size} chats never reached ${messages} messages, e.g. ${[...pending][0] ?? ''}`);
      if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  /**
   * Waits until the host has committed `count` more entity operations than in `since`. One small
   * stats request per 10 ms, so the waiting does not load the machine it measures.
   */
  async processed(since: Stats, count: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await this.stats();
      const done = now.entities.operationsProcessed - since.entities.operationsProcessed;
      if (done >= count) return;
      if (Date.now() > deadline) throw new Error(`only ${done} of ${count} operations processed after ${timeoutMs} ms: ${JSON.stringify(now.entities)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  /** Posts without waiting for the reply; anything but 202 stops the run (a silent failure would skew every figure). */
  async accept(chatId: string, message: string): Promise<void> {
    const response = await this.post(chatId, message, '?wait=0');
    if (response.status !== 202) throw new Error(`POST ${chatId} answered ${response.status}: ${await response.text()}`);
    await response.body?.cancel();
  }
}

/** An app folder like the repo root but with its own host.json (to vary the batch size). */
async function appRootWithBatchSize(batchSize: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `bench-app-${batchSize}-`));
  const hostJson = JSON.parse(await readFile(path.join(REPO_ROOT, 'host.json'), 'utf8')) as { extensions: { durableTask: Record<string, unknown> } };
  hostJson.extensions.durableTask.maxEntityOperationBatchSize = batchSize;
  hostJson.extensions.durableTask.hubName = `Bench${batchSize}`;
  await writeFile(path.join(dir, 'host.json'), JSON.stringify(hostJson));
  for (const entry of ['package.json', 'dist', 'node_modules', 'ui']) await symlink(path.join(REPO_ROOT, entry), path.join(dir, entry));
  return dir;
}

async function startApp(azurite: AzuriteHandle, model: ModelServer, appRoot = REPO_ROOT): Promise<Bench> {
  const host = await startHost({
    appRoot,
    args: ['--quiet'],
    env: {
      AzureWebJobsStorage: azurite.connectionString,
      OPENAI_BASE_URL: model.baseURL,
      AZURE_OPENAI_ENDPOINT: '',
      CHAT_HISTORY_TOKEN_BUDGET: String(BUDGET),
      MODEL_TIMEOUT_MS: '10000',
    },
  });
  return new Bench(host, model);
}

// ---------- the measurements ----------

async function askOverhead(app: Bench): Promise<void> {
  app.model.setDefault({ reply: 'ok', usage: { prompt: 5, completion: 1 } });
  const direct = new OpenAI({ baseURL: app.model.baseURL, apiKey: 'x', maxRetries: 0 });
  const viaDirect = () => direct.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'ping' }], max_completion_tokens: 1000 });
  const viaApp = async () => {
    const response = await fetch(app.url('/api/ask'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"ping"}' });
    if (response.status !== 200) throw new Error(`ask: ${response.status}`);
    return response.text();
  };
  const rounds = scale(2000);
  for (let i = 0; i < 200; i++) await Promise.all([viaDirect(), viaApp()]); // warm-up: JIT, sockets
  const directTimes: number[] = [];
  const appTimes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // interleaved, so drift on the machine hits both sides alike
    directTimes.push((await timed(viaDirect))[0]);
    appTimes.push((await timed(viaApp))[0]);
  }
  const d = summary(directTimes);
  const a = summary(appTimes);
  const throughput = async (call: () => Promise<unknown>) => {
    const total = scale(4000);
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next++ < total) await call();
      }),
    );
    return total / ((performance.now() - start) / 1000);
  };
  const directRps = await throughput(viaDirect);
  const appRps = await throughput(viaApp);
  table(`ask overhead (zero-latency model, ${rounds} sequential calls each; throughput with 32 concurrent clients)`, ['path', 'p50', 'p99', 'req/s @32'], [
    ['openai client → model (direct)', ms(d.p50), ms(d.p99), directRps.toFixed(0)],
    ['client → app → model', ms(a.p50), ms(a.p99), appRps.toFixed(0)],
    ['difference (app overhead)', ms(a.p50 - d.p50), ms(a.p99 - d.p99), ''],
    ['ratio app / direct', (a.p50 / d.p50).toFixed(2), (a.p99 / d.p99).toFixed(2), (appRps / directRps).toFixed(2)],
  ]);
}

async function turnOverhead(app: Bench): Promise<void> {
  app.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}`, latencyMs: MODEL_LATENCY_MS });
  const turns = scale(200);
  await app.put('bench-wait');
  await app.put('bench-poll');
  for (let i = 0; i < 10; i++) await app.post('bench-wait', `warm ${i}`);
  const waitTimes: number[] = [];
  for (let i = 0; i < turns; i++) {
    const [t, response] = await timed(() => app.post('bench-wait', `turn ${i}`));
    if (response.status !== 200) throw new Error(`post: ${response.status}`);
    await response.text();
    waitTimes.push(t - MODEL_LATENCY_MS);
  }
  const pollTimes: number[] = [];
  for (let i = 0; i < turns; i++) {
    const start = performance.now();
    const accepted = await app.post('bench-poll', `turn ${i}`, '?wait=0');
    const { messageId } = (await accepted.json()) as { messageId: string };
    const location = accepted.headers.get('location') ?? '';
    // A client that polls every 2 ms: measures when the reply becomes visible, not a client's Retry-After.
    for (;;) {
      const polled = (await (await fetch(location)).json()) as { recentMessages: { replyTo?: string }[] };
      if (polled.recentMessages.some((m) => m.replyTo === messageId)) break;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    pollTimes.push(performance.now() - start - MODEL_LATENCY_MS);
  }
  const w = summary(waitTimes);
  const p = summary(pollTimes);
  table(`chat turn overhead (model fixed at ${MODEL_LATENCY_MS} ms; time from POST to reply minus the model time; ${turns} turns each)`, ['path', 'p50', 'p99', 'mean'], [
    ['POST with wait (200 + reply)', ms(w.p50), ms(w.p99), ms(w.mean)],
    ['POST ?wait=0 (202), then poll GET every 2 ms', ms(p.p50), ms(p.p99), ms(p.mean)],
  ]);
}

async function storageCost(azurite: AzuriteHandle, model: ModelServer): Promise<void> {
  model.setDefault({ reply: 'ok' });
  const rows: (string | number)[][] = [];
  for (const batchSize of [1, 4, 10]) {
    const app = await startApp(azurite, model, await appRootWithBatchSize(batchSize));
    const chats = Array.from({ length: 10 }, (_, i) => `storage-${batchSize}-${i}`);
    await Promise.all(chats.map((id) => app.put(id)));
    const perChat = scale(40);
    const before = await app.stats();
    await inParallel(chats.flatMap((id) => Array.from({ length: perChat }, (_, k) => [id, `m${k}`] as const)), 64, ([id, m]) => app.accept(id, m));
    await app.processed(before, chats.length * perChat);
    const after = await app.stats();
    await app.drain(chats, perChat * 2);
    const turns = chats.length * perChat;
    const requests = after.storage.requests - before.storage.requests;
    const batches = after.entities.batches - before.entities.batches;
    const kinds = Object.entries(after.storage.byKind)
      .map(([kind, n]) => [kind, n - (before.storage.byKind[kind] ?? 0)] as const)
      .filter(([, n]) => n > 0)
      .map(([kind, n]) => `${kind} ${n}`)
      .join(', ');
    rows.push([batchSize, turns, batches, (turns / batches).toFixed(1), requests, (requests / turns).toFixed(2), kinds]);
    await app.host.stop();
  }
  table('storage requests per turn (10 chats, turns posted at once; counted by the host, not timed — how turns fall into batches depends on arrival, so batch counts vary by a few per cent)', ['maxEntityOperationBatchSize', 'turns', 'batches', 'turns/batch', 'storage requests', 'per turn', 'by kind'], rows);
}

async function scaleAcrossChats(app: Bench, azurite: AzuriteHandle): Promise<void> {
  app.model.setDefault({ reply: (r) => `re: ${lastUserContent(r)}`, latencyMs: MODEL_LATENCY_MS });
  const run = async (label: string, chats: number, turnsPerChat: number) => {
    const ids = Array.from({ length: chats }, (_, i) => `scale-${label}-${i}`);
    await inParallel(ids, 64, (id) => app.put(id));
    const before = await app.stats();
    const [wall] = await timed(async () => {
      await inParallel(ids.flatMap((id) => Array.from({ length: turnsPerChat }, (_, k) => [id, `t${k}`] as const)), 64, ([id, m]) => app.accept(id, m));
      await app.processed(before, chats * turnsPerChat);
    });
    await app.drain(ids, turnsPerChat * 2); // and check every turn really landed
    const turns = chats * turnsPerChat;
    const ideal = turnsPerChat * MODEL_LATENCY_MS; // turns of one chat are sequential by design
    return { label: `${chats} chat${chats > 1 ? 's' : ''} × ${turnsPerChat} turns`, turns, wall, rate: turns / (wall / 1000), ideal };
  };
  const single = await run('one', 1, 100);
  const many = await run('many', 200, 10);
  table(`scale across chats, end to end (model fixed at ${MODEL_LATENCY_MS} ms; all turns posted at once, 64 client connections)`, ['run', 'turns', 'wall', 'ideal wall', 'wall / ideal', 'turns/s'], [
    ...[single, many].map((r) => [r.label, r.turns, ms(r.wall), ms(r.ideal), (r.wall / r.ideal).toFixed(2), r.rate.toFixed(1)]),
    ['ratio 200 chats / 1 chat', '', '', '', '', (many.rate / single.rate).toFixed(1)],
  ]);

  // The same work with the posting taken out of the clock: every turn is accepted while the model
  // holds its answers, then the model is released and only the entities' processing is timed.
  const processing = async (label: string, chats: number, turnsPerChat: number) => {
    const ids = Array.from({ length: chats }, (_, i) => `scale-held-${label}-${i}`);
    await inParallel(ids, 64, (id) => app.put(id));
    const before = await app.stats();
    app.model.hold();
    await inParallel(ids.flatMap((id) => Array.from({ length: turnsPerChat }, (_, k) => [id, `t${k}`] as const)), 64, ([id, m]) => app.accept(id, m));
    const [wall] = await timed(async () => {
      app.model.release();
      await app.processed(before, chats * turnsPerChat);
    });
    await app.drain(ids, turnsPerChat * 2);
    const turns = chats * turnsPerChat;
    return { label: `${chats} chat${chats > 1 ? 's' : ''} × ${turnsPerChat} turns`, turns, wall, rate: turns / (wall / 1000), ideal: turnsPerChat * MODEL_LATENCY_MS };
  };
  const singleHeld = await processing('one', 1, 100);
  const manyHeld = await processing('many', 200, 10);
  table(`scale across chats, processing only (turns accepted first, then the ${MODEL_LATENCY_MS} ms model released)`, ['run', 'turns', 'wall', 'ideal wall', 'wall / ideal', 'turns/s'], [
    ...[singleHeld, manyHeld].map((r) => [r.label, r.turns, ms(r.wall), ms(r.ideal), (r.wall / r.ideal).toFixed(2), r.rate.toFixed(1)]),
    ['ratio 200 chats / 1 chat', '', '', '', '', (manyHeld.rate / singleHeld.rate).toFixed(1)],
  ]);
  table('peak memory during the run (VmHWM)', ['process', 'peak RSS'], [
    ['local host (app + durable runtime)', `${(await peakMemoryMiB(app.host.pid)).toFixed(0)} MiB`],
    ['Azurite (table service, in memory)', `${(await peakMemoryMiB(azurite.pid)).toFixed(0)} MiB`],
  ]);
}

async function promptGrowthAndReads(app: Bench): Promise<void> {
  app.model.setDefault({ reply: (r) => `Here is a short answer to: ${lastUserContent(r)}` });
  const chatId = 'growth';
  await app.put(chatId);
  const turns = 500;
  const firstRequest = app.model.requests.length;
  for (let i = 0; i < turns; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, k) => app.accept(chatId, `Question ${i + k}: what is interesting about the number ${i + k}?`)));
    await app.drain([chatId], (i + 50) * 2);
  }
  // The turns in the order the chat stored them, and the prompt the model received for each.
  const stored = (await (await fetch(app.url(`/api/chats/${chatId}`))).json()) as { instructions: string; recentMessages: { role: string; content: string }[] };
  const promptFor = new Map(app.model.requests.slice(firstRequest).map((r: RecordedRequest) => [r.body.messages.at(-1)?.content, r.body.messages]));
  const tokens = (messages: readonly { content: string }[]) => messages.reduce((sum, m) => sum + countMessageTokens(m.content), REPLY_PRIMING_TOKENS);
  const userIndexes = stored.recentMessages.flatMap((m, i) => (m.role === 'user' ? [i] : []));
  const sent = userIndexes.map((i) => promptFor.get(stored.recentMessages[i]!.content) ?? []);
  const sizes = sent.map(tokens);
  // The seed's extension sends the instructions and the whole history every turn.
  const fullHistory = (turn: number) => tokens([{ content: stored.instructions }, ...stored.recentMessages.slice(0, userIndexes[turn - 1]! + 1)]);
  table(`prompt tokens per turn (one chat, ${turns} turns, CHAT_HISTORY_TOKEN_BUDGET=${BUDGET}, o200k tokenizer)`, ['turn', 'sent by this app', 'messages in prompt', 'full history (seed)'], [
    ...[1, 10, 100, 500].map((k) => [k, sizes[k - 1]!, sent[k - 1]!.length, fullHistory(k)]),
    ['largest ever sent', Math.max(...sizes), '', `budget ${BUDGET}`],
  ]);

  const samples = scale(200);
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
  const all = await read('');
  const messages = (await app.state(chatId)).recentMessages as { createdAt?: string }[];
  const tenFromEnd = messages[messages.length - 11]?.createdAt ?? new Date(0).toISOString();
  const lastTen = await read(`?timestampUTC=${encodeURIComponent(tenFromEnd)}`);
  const newest = await read(`?timestampUTC=${encodeURIComponent(new Date().toISOString())}`);
  table(`GET /api/chats/{id} on a ${messages.length}-message chat (${samples} reads each)`, ['query', 'messages returned', 'p50', 'p99'], [
    ['no timestampUTC', all.count, ms(all.p50), ms(all.p99)],
    ['timestampUTC = the 11th newest message', lastTen.count, ms(lastTen.p50), ms(lastTen.p99)],
    ['timestampUTC = now', newest.count, ms(newest.p50), ms(newest.p99)],
  ]);
}

async function main(): Promise<void> {
  console.log(`# npm run bench${quick ? ' --quick' : ''}`);
  console.log(`\nMachine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString()}`);
  const [azurite, model] = await Promise.all([startAzurite(), startModelServer()]);
  try {
    const app = await startApp(azurite, model);
    await askOverhead(app);
    await turnOverhead(app);
    await scaleAcrossChats(app, azurite);
    await promptGrowthAndReads(app);
    await app.host.stop();
    await storageCost(azurite, model);
  } finally {
    await Promise.all([azurite.stop(), model.close()]);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
