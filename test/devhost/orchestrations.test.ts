// Durable orchestrations and activities: the same assertions on the local host and on the real
// Functions host (with the real Durable extension), against the fixture app in
// test/fixtures/devhost-orchestrations. What each runtime hands the durable-functions SDK, what its
// HTTP API answers and what the durable client then returns or throws must agree; so must crash
// safety (kill -9 during an activity). The real-host half is skipped only when that host is not
// available here and REQUIRE_REAL_HOST is not 1.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteHandle } from '../support/azurite';
import { stopAllHosts } from '../support/host';
import { pollUntil } from '../support/poll';
import { countTaskHubRows, fixtureApi, realHostAvailability, startFixture, type FixtureRuntime, type RuntimeKind } from './fixtureRuntimes';

const APP = 'test/fixtures/devhost-orchestrations';
const HUB = 'DevhostOrch';

interface TraceLine {
  functionName: string;
  input?: { history: Record<string, unknown>[]; [field: string]: unknown };
}

const readLines = <T>(file: string): T[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as T) : []);

function conformance(kind: RuntimeKind): void {
  let azurite: AzuriteHandle;
  let runtime: FixtureRuntime;
  let api: ReturnType<typeof fixtureApi>;
  let scratch: string;
  let runLog: string;
  let traceFile: string;

  /**
   * The counter entity's state once `done` accepts it. On the Functions host readEntityState can lag
   * behind a result the entity already sent an orchestration (docs/runtimes.md), so it is polled.
   */
  const entityState = (key: string, done: (state: number | undefined) => boolean): Promise<number | undefined> =>
    pollUntil(`counter@${key}`, async () => {
      const read = await api.client<{ entityExists: boolean; entityState?: number }>('readEntityState', { name: 'counter', key });
      const state = read.ok ? read.value.entityState : undefined;
      return done(state) ? { state } : undefined;
    }).then(({ state }) => state);

  /** Activity starts recorded by the fixture's `tracked` and `flaky` activities. */
  const startsOf = (key: string): number => readLines<{ event: string; key: string }>(runLog).filter((line) => line.event === 'start' && line.key === key).length;

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), `orchestrations-${kind}-`));
    runLog = path.join(scratch, 'runs.jsonl');
    traceFile = path.join(scratch, 'trace.jsonl');
    azurite = await startAzurite();
    runtime = await startFixture(kind, APP, { AzureWebJobsStorage: azurite.connectionString, FIXTURE_RUN_LOG: runLog, FIXTURE_TRACE_FILE: traceFile });
    api = fixtureApi(runtime);
  });

  afterAll(async () => {
    await runtime?.stop();
    await azurite?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('instance management', () => {
    it('purges every row a finished instance owns; refuses to purge one that runs', async () => {
      const before = await countTaskHubRows(azurite.connectionString, HUB);
      await api.start('sequence', 'purged', 'p');
      expect((await api.finished('purged')).runtimeStatus).toBe('Completed');
      const during = await countTaskHubRows(azurite.connectionString, HUB);
      expect(Object.values(during).reduce((a, b) => a + b, 0)).toBeGreaterThan(Object.values(before).reduce((a, b) => a + b, 0));

      expect(await api.client('purge', { instanceId: 'purged' })).toEqual({ ok: true, value: { instancesDeleted: 1 } });
      expect(await countTaskHubRows(azurite.connectionString, HUB)).toEqual(before);
      expect(await api.client('getStatus', { instanceId: 'purged' })).toEqual({
        ok: false,
        error: 'DurableClient error: Durable Functions extension replied with HTTP 404 response. This usually means we could not find any data associated with the instanceId provided: purged.',
      });
      expect(await api.client('purge', { instanceId: 'purged' })).toEqual({ ok: true, value: { instancesDeleted: 0 } });
      expect((await api.webhook('DELETE', 'instances/purged')).status).toBe(404);

      await api.start('events', 'not-purged');
      await api.waitFor('not-purged', (status) => status.customStatus === 'waiting-a');
      expect(await api.client('purge', { instanceId: 'not-purged' })).toEqual({
        ok: false,
        error:
          'The operation failed with an unexpected status code: 412. Details: "Only orchestrations in a terminal state can be purged, but the orchestration with instance ID not-purged has status Running"',
      });
      expect((await api.status('not-purged')).runtimeStatus).toBe('Running');
    });

    it('treats an entity as the instance @name@key: reported Running with its state; purging deletes it, existing or deleted', async () => {
      const before = await countTaskHubRows(azurite.connectionString, HUB);
      const signal = (key: string, operation: string, input?: number) => api.client('signalEntity', { name: 'counter', key, operation, input });
      await signal('purge-me', 'add', 1);
      expect(await entityState('purge-me', (state) => state === 1)).toBe(1);
      expect(await api.status('@counter@purge-me')).toMatchObject({
        name: '@counter@purge-me',
        runtimeStatus: 'Running',
        input: { exists: true, state: '1' },
        customStatus: { entityExists: true },
        output: null,
      });
      expect(await api.client('purge', { instanceId: '@counter@purge-me' })).toEqual({ ok: true, value: { instancesDeleted: 1 } });
      expect(await api.client('readEntityState', { name: 'counter', key: 'purge-me' })).toEqual({ ok: true, value: { entityExists: false } });
      expect(await countTaskHubRows(azurite.connectionString, HUB)).toEqual(before);

      // A deleted entity's instance stays until purged.
      await signal('purge-me', 'add', 2);
      await signal('purge-me', 'delete');
      const deleted = await api.waitFor('@counter@purge-me', (status) => JSON.stringify(status.customStatus) === '{}');
      expect(deleted.input).toEqual({ sorter: {} });
      expect(await api.client('purge', { instanceId: '@counter@purge-me' })).toEqual({ ok: true, value: { instancesDeleted: 1 } });
      expect(await countTaskHubRows(azurite.connectionString, HUB)).toEqual(before);
      expect(await api.client('purge', { instanceId: '@counter@never' })).toEqual({ ok: true, value: { instancesDeleted: 0 } });

      await signal('purge-me', 'add', 5);
      expect(await entityState('purge-me', (state) => state !== undefined)).toBe(5);

      // Purges that race (two clients deleting one chat) both succeed; one of them finds the rows gone.
      const raced = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => (await api.webhook('DELETE', 'instances/@counter@purge-me')).status));
      expect(raced.every((status) => status === 200 || status === 404)).toBe(true);
      expect(raced).toContain(200);
      expect(await countTaskHubRows(azurite.connectionString, HUB)).toEqual(before);
    });

    it('refuses startNew on a Pending or Running id (409) and replaces a finished one', async () => {
      await api.start('events', 'reused', 'first');
      const again = await api.client('startNew', { name: 'events', instanceId: 'reused', input: 'again' });
      expect(again.ok).toBe(false);
      expect(again.ok ? '' : again.error).toMatch(
        /^The operation failed with an unexpected status code: 409\. Details: \{"Message":"An Orchestration instance with the status (Pending|Running) already exists\."\}$/,
      );
      await api.waitFor('reused', (status) => status.customStatus === 'waiting-a');
      expect((await api.client('raiseEvent', { instanceId: 'reused', eventName: 'a', data: 1 })).ok).toBe(true);
      expect((await api.client('raiseEvent', { instanceId: 'reused', eventName: 'b', data: 2 })).ok).toBe(true);
      const first = await api.finished('reused');
      expect(first).toMatchObject({ runtimeStatus: 'Completed', input: 'first', output: { a: 1, b: 2 } });

      expect(await api.client('startNew', { name: 'events', instanceId: 'reused', input: 'second' })).toEqual({ ok: true, value: 'reused' });
      const second = await api.waitFor('reused', (status) => status.customStatus === 'waiting-a');
      expect(second).toMatchObject({ runtimeStatus: 'Running', input: 'second', output: null });
      expect(Date.parse(second.createdTime)).toBeGreaterThanOrEqual(Date.parse(first.createdTime));
      await api.client('terminate', { instanceId: 'reused', reason: 'done' });
    });

    it('answers the durable client like the extension: status codes, bodies and what the client makes of them', async () => {
      const started = await api.webhook('POST', 'orchestrators/events/raw-1', JSON.stringify({ a: 1 }), { 'content-type': 'application/json' });
      expect(started.status).toBe(202);
      expect(started.headers.get('retry-after')).toBe('10');
      const links = JSON.parse(started.body) as Record<string, string>;
      expect(Object.keys(links)).toEqual(['id', 'statusQueryGetUri', 'sendEventPostUri', 'terminatePostUri', 'purgeHistoryDeleteUri', 'restartPostUri', 'suspendPostUri', 'resumePostUri']);
      expect(links['id']).toBe('raw-1');
      expect(started.headers.get('location')).toBe(links['statusQueryGetUri']);

      const running = await api.webhook('GET', 'instances/raw-1');
      expect(running.status).toBe(202);
      expect(running.headers.get('retry-after')).toBe('5');
      expect(Object.keys(JSON.parse(running.body) as object)).toEqual(['name', 'instanceId', 'runtimeStatus', 'input', 'customStatus', 'output', 'createdTime', 'lastUpdatedTime']);
      expect(JSON.parse(running.body)).toMatchObject({ name: 'events', instanceId: 'raw-1', input: { a: 1 }, output: null });
      expect((JSON.parse(running.body) as { createdTime: string }).createdTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

      const textPlain = await api.webhook('POST', 'instances/raw-1/raiseEvent/a', '"x"', { 'content-type': 'text/plain' });
      expect(textPlain).toMatchObject({ status: 400, body: '{"Message":"Only application/json request content is supported"}' });
      const noData = await api.client('raiseEvent', { instanceId: 'raw-1', eventName: 'a' });
      expect(noData.ok ? '' : noData.error).toMatch(/^The operation failed with an unexpected status code: 400\. Details: \{"Message":"Invalid JSON content"/);

      expect((await api.webhook('POST', 'instances/raw-1/terminate?reason=because')).status).toBe(202);
      expect(await api.finished('raw-1')).toMatchObject({ runtimeStatus: 'Terminated', output: 'because' });
      expect((await api.webhook('GET', 'instances/raw-1')).status).toBe(200);
      expect((await api.webhook('POST', 'instances/raw-1/terminate?reason=again')).status).toBe(410);
      expect((await api.webhook('POST', 'instances/raw-1/raiseEvent/a', '1', { 'content-type': 'application/json' })).status).toBe(410);
      expect(await api.client('raiseEvent', { instanceId: 'raw-1', eventName: 'a', data: 1 })).toEqual({ ok: true, value: null }); // 410 is no error to the client

      expect((await api.webhook('GET', 'instances/nope')).status).toBe(404);
      expect((await api.webhook('POST', 'instances/nope/raiseEvent/a', '1', { 'content-type': 'application/json' })).status).toBe(404);
      expect(await api.client('raiseEvent', { instanceId: 'nope', eventName: 'a', data: 1 })).toEqual({ ok: false, error: "No instance with ID 'nope' found." });
      expect(await api.client('terminate', { instanceId: 'nope', reason: 'r' })).toEqual({ ok: false, error: "No instance with ID 'nope' found." });

      // Without an id the client gets a generated one (32 hex digits); without input the orchestration gets "".
      const generated = await api.client<string>('startNew', { name: 'events' });
      expect(generated.ok ? generated.value : generated.error).toMatch(/^[0-9a-f]{32}$/);
      if (generated.ok) {
        expect((await api.waitFor(generated.value, (status) => status.customStatus === 'waiting-a')).input).toBe('');
        await api.client('terminate', { instanceId: generated.value, reason: 'r' });
      }
    });

    it('terminates: Terminated, the reason as output, the custom status kept', async () => {
      await api.start('events', 'terminated');
      await api.waitFor('terminated', (status) => status.customStatus === 'waiting-a');
      expect(await api.client('terminate', { instanceId: 'terminated', reason: 'stop it' })).toEqual({ ok: true, value: null });
      expect(await api.finished('terminated')).toMatchObject({ runtimeStatus: 'Terminated', output: 'stop it', customStatus: 'waiting-a' });
    });
  });

  describe('orchestrator features', () => {
    it('calls activities in sequence, converting inputs and results as the Functions host does', async () => {
      await api.start('identities', 'identities');
      const { output } = await api.finished('identities');
      expect(output).toEqual([
        { result: 'plain', type: 'string' },
        { result: '{"a":1}', type: 'string' },
        { result: '42', type: 'string' },
        { result: 42, type: 'number' },
        { result: 1.5, type: 'number' },
        // A boolean input reaches the activity as the string the .NET host made of it.
        { result: 'True', type: 'string' },
        { result: 'False', type: 'string' },
        { result: null, type: 'null' },
        { result: [1, 'two'], type: 'object' },
        { result: { nested: { x: 1 } }, type: 'object' },
        { result: '', type: 'string' },
        { result: 0, type: 'number' },
        { result: null, type: 'null' },
      ]);
      await api.start('unwraps', 'unwraps');
      expect((await api.finished('unwraps')).output).toEqual([
        { result: true, type: 'boolean' },
        { result: false, type: 'boolean' },
        { result: { flag: true }, type: 'object' },
        { result: 'x', type: 'string' },
      ]);
      await api.start('sequence', 'sequence', 'in');
      const sequence = (await api.finished('sequence')).output as Record<string, unknown>;
      expect(sequence).toMatchObject({
        first: { input: 'in', type: 'string' },
        second: { input: 'a "quoted" string', type: 'string' },
        third: { input: '{"looks":"like json"}', type: 'string' },
        fourth: { type: 'undefined' },
        instanceId: 'sequence',
      });
      expect(Date.parse(String(sequence['t1']))).toBeGreaterThan(Date.parse(String(sequence['t0'])));
    });

    it('runs the activities of a Task.all in parallel', async () => {
      await api.start('parallel', 'parallel', { count: 4, ms: 1_500 });
      const spans = (await api.finished('parallel')).output as { tag: string; start: number; end: number }[];
      expect(spans.map((span) => span.tag)).toEqual(['t0', 't1', 't2', 't3']);
      expect(Math.max(...spans.map((span) => span.start))).toBeLessThan(Math.min(...spans.map((span) => span.end)));
    });

    it('calls and signals an entity in order, gets results, and sees a failed operation as an Error', async () => {
      await api.start('entityCalls', 'entity-calls', 'c1');
      expect((await api.finished('entity-calls')).output).toEqual({ afterAdd: 11, read: 11, failure: { name: 'Error', message: '[object Object]' } });
      expect(await entityState('c1', (state) => state === 11)).toBe(11);
    });

    it('hands entity operations the inputs the extension does', async () => {
      await api.start('entityInputs', 'entity-inputs', 'e1');
      expect((await api.finished('entity-inputs')).output).toEqual([
        { input: 'plain', type: 'string' },
        { input: '{"a":1}', type: 'string' },
        { input: '42', type: 'string' },
        { input: 42, type: 'number' },
        { input: 1.5, type: 'number' },
        { input: true, type: 'boolean' },
        { input: false, type: 'boolean' },
        { type: 'undefined' },
        { input: [1, 'two'], type: 'object' },
        { input: { nested: { x: 1 } }, type: 'object' },
        { input: '', type: 'string' },
        { input: 0, type: 'number' },
        { type: 'undefined' },
      ]);
    });

    it('gives the orchestrator the extension history: event types and ids, played flags, entity request and response messages', async () => {
      await api.start('entityCalls', 'traced', 'c2');
      await api.finished('traced');
      const last = readLines<TraceLine>(traceFile)
        .filter((line) => line.functionName === 'entityCalls' && line.input?.['instanceId'] === 'traced')
        .at(-1)?.input;
      expect(last).toMatchObject({
        input: 'c2',
        isReplaying: true,
        parentInstanceId: null,
        upperSchemaVersion: 1,
        upperSchemaVersionNew: 3,
        longRunningTimerIntervalDuration: '3.00:00:00',
        maximumShortTimerDuration: '6.00:00:00',
      });
      const history = last?.history ?? [];
      expect(history.map((event) => [event['EventType'], event['EventId'], event['IsPlayed']])).toEqual([
        [12, -1, false],
        [0, -1, true],
        [14, 0, false],
        [14, 1, false],
        [13, -1, false],
        [12, -1, false],
        [15, -1, true],
        [14, 2, false],
        [13, -1, false],
        [12, -1, false],
        [15, -1, true],
        [14, 3, false],
        [13, -1, false],
        [12, -1, false],
        [15, -1, false],
      ]);
      expect(history[1]).toMatchObject({ Name: 'entityCalls', Input: '"c2"', OrchestrationInstance: { InstanceId: 'traced' } });
      const requests = history.filter((event) => event['EventType'] === 14).map((event) => JSON.parse(String(event['Input'])) as Record<string, unknown>);
      expect(history.filter((event) => event['EventType'] === 14).map((event) => event['InstanceId'])).toEqual(['@counter@c2', '@counter@c2', '@counter@c2', '@counter@c2']);
      expect(requests.map((request) => [request['op'], request['signal'], request['input'], request['parent']])).toEqual([
        ['add', true, '1', 'traced'],
        ['add', undefined, '10', 'traced'],
        ['get', undefined, undefined, 'traced'],
        ['fail', undefined, undefined, 'traced'],
      ]);
      const responses = history.filter((event) => event['EventType'] === 15);
      expect(responses.map((event) => event['Name'])).toEqual(requests.slice(1).map((request) => request['id']));
      expect(responses.map((event) => JSON.parse(String(event['Input'])) as object)).toEqual([
        expect.objectContaining({ result: '11' }),
        expect.objectContaining({ result: '11' }),
        expect.objectContaining({ result: '{}', exceptionType: 'Error' }),
      ]);
    });

    it('sleeps on a durable timer; currentUtcDateTime moves with the episodes', async () => {
      await api.start('timer', 'timer', { ms: 1_500 });
      const { t0, fireAt, t1 } = (await api.finished('timer')).output as { t0: string; fireAt: string; t1: string };
      expect(Date.parse(fireAt) - Date.parse(t0)).toBe(1_500);
      // The Functions host has resumed an orchestration up to ~0.2 s before its timer's fireAt.
      expect(Date.parse(t1)).toBeGreaterThan(Date.parse(fireAt) - 500);
    });

    it('buffers an event raised before its wait, delivers one raised during it, and reports custom status', async () => {
      await api.start('events', 'events');
      await api.waitFor('events', (status) => status.customStatus === 'waiting-a');
      expect((await api.webhook('POST', 'instances/events/raiseEvent/b', JSON.stringify({ v: 'b' }), { 'content-type': 'application/json' })).status).toBe(202);
      expect(await api.client('raiseEvent', { instanceId: 'events', eventName: 'a', data: { v: 'a' } })).toEqual({ ok: true, value: null });
      expect(await api.finished('events')).toMatchObject({ runtimeStatus: 'Completed', output: { a: { v: 'a' }, b: { v: 'b' } }, customStatus: 'done' });
    });

    it('Task.any: an event beats a timer that is then cancelled, so the instance completes at once', async () => {
      await api.start('eventOrTimer', 'any-cancel', { timeoutMs: 300_000, cancel: true });
      await api.waitFor('any-cancel', (status) => status.runtimeStatus === 'Running');
      await api.client('raiseEvent', { instanceId: 'any-cancel', eventName: 'approve', data: 'yes' });
      expect(await api.finished('any-cancel', 20_000)).toMatchObject({ runtimeStatus: 'Completed', output: { approved: 'yes' } });

      await api.start('eventOrTimer', 'any-timeout', { timeoutMs: 1_000, cancel: true });
      expect(await api.finished('any-timeout')).toMatchObject({ runtimeStatus: 'Completed', output: { timedOut: true } });
    });

    it('keeps the instance Running after it returns until its uncancelled timer fires and its slower activity ends', async () => {
      await api.start('eventOrTimer', 'any-uncancelled', { timeoutMs: 5_000, cancel: false });
      const running = await api.waitFor('any-uncancelled', (status) => status.runtimeStatus === 'Running');
      await api.client('raiseEvent', { instanceId: 'any-uncancelled', eventName: 'approve', data: 'late' });
      const done = await api.finished('any-uncancelled');
      expect(done.output).toEqual({ approved: 'late' });
      expect(Date.parse(done.lastUpdatedTime) - Date.parse(running.createdTime)).toBeGreaterThanOrEqual(4_000);

      const started = Date.now();
      await api.start('anyActivity', 'any-activity', { slowMs: 4_000 });
      expect((await api.finished('any-activity')).output).toBe('quick');
      expect(Date.now() - started).toBeGreaterThanOrEqual(3_900);

      await api.start('anyFail', 'any-fail', { slowMs: 3_000 });
      const failedAt = Date.now();
      expect(await api.finished('any-fail')).toMatchObject({ runtimeStatus: 'Failed', output: "Orchestrator function 'anyFail' failed: gave up after the first task" });
      expect(Date.now() - failedAt).toBeGreaterThanOrEqual(2_000);
    });

    it('turns an activity failure into an Error the orchestrator can catch, and an uncaught one into Failed', async () => {
      await api.start('catchFailure', 'caught');
      const caught = (await api.finished('caught')).output as { name: string; message: string };
      expect(caught.name).toBe('Error');
      const [reason, details] = caught.message.split(' \n ');
      expect(reason).toBe("Activity function 'fail' failed: boom");
      // Details: the host's serialized exception around the worker's, with the JavaScript message and stack.
      expect(JSON.parse(details ?? '')).toMatchObject({
        ClassName: 'System.Exception',
        Message: 'boom',
        InnerException: { RemoteMessage: 'boom', RemoteStackTrace: expect.stringMatching(/^Error: boom\n {4}at /) },
      });

      await api.start('failing', 'failing');
      const failing = await api.finished('failing');
      expect(failing.runtimeStatus).toBe('Failed');
      expect(String(failing.output)).toMatch(/^Orchestrator function 'failing' failed: Activity function 'fail' failed: unhandled boom \n \{/);

      await api.start('throwing', 'throwing');
      expect(await api.finished('throwing')).toMatchObject({ runtimeStatus: 'Failed', output: "Orchestrator function 'throwing' failed: orchestrator threw" });
    });

    it('retries an activity with callActivityWithRetry, then gives up with the last failure', async () => {
      await api.start('retrying', 'retry-ok', { key: 'retry-ok', failures: 2, attempts: 3 });
      expect(await api.finished('retry-ok')).toMatchObject({ runtimeStatus: 'Completed', output: { attempt: 3 } });
      await api.start('retrying', 'retry-out', { key: 'retry-out', failures: 5, attempts: 2 });
      const out = await api.finished('retry-out');
      expect(out.runtimeStatus).toBe('Failed');
      expect(String(out.output)).toMatch(/^Orchestrator function 'retrying' failed: Activity function 'flaky' failed: flaky attempt 2 \n /);
      expect(startsOf('retry-out')).toBe(2);
    });

    it('gives activities and entities a durable client: an activity raises an event, an entity starts an orchestration', async () => {
      await api.start('events', 'relay-target');
      await api.waitFor('relay-target', (status) => status.customStatus === 'waiting-a');
      await api.start('relay', 'relay', { instanceId: 'relay-target', eventName: 'a', data: 'from an activity' });
      expect((await api.finished('relay')).output).toBe('raised');
      await api.waitFor('relay-target', (status) => typeof status.customStatus === 'object' && status.customStatus !== null);
      expect((await api.status('relay-target')).customStatus).toEqual({ waiting: 'b', a: 'from an activity' });

      expect((await api.client('signalEntity', { name: 'counter', key: 'launcher', operation: 'launch', input: { name: 'sequence', instanceId: 'launched', input: 'L' } })).ok).toBe(true);
      expect(await api.finished('launched')).toMatchObject({ runtimeStatus: 'Completed', input: 'L' });
    });

    it('runs many orchestrations independently', async () => {
      const ids = Array.from({ length: 8 }, (_, i) => `many-${i}`);
      const started = Date.now();
      await Promise.all(ids.map((id) => api.start('timer', id, { ms: 2_000 })));
      const done = await Promise.all(ids.map((id) => api.finished(id)));
      expect(done.map((status) => status.runtimeStatus)).toEqual(ids.map(() => 'Completed'));
      expect(Date.now() - started).toBeLessThan(15_000); // eight 2 s timers, not one after another
    });
  });

  describe('crash safety', () => {
    it('after kill -9: a completed activity is not run again, the one in flight is; timers and entity messages survive', async () => {
      await api.start('timer', 'crash-timer', { ms: 4_000 });
      await api.start('signalMany', 'crash-signals', { key: 'crash', count: 20 });
      await api.start('crashy', 'crash');
      await pollUntil('the second activity to start', async () => (startsOf('crash:second') === 1 ? true : undefined), 60_000, 50);
      expect(startsOf('crash:first')).toBe(1);
      await runtime.restart({ kill: true });

      const crash = await api.finished('crash', 180_000);
      expect(crash).toMatchObject({ runtimeStatus: 'Completed', output: { first: { key: 'crash:first', attempt: 1 }, second: { key: 'crash:second', attempt: 2 } } });
      expect(startsOf('crash:first')).toBe(1);
      expect(startsOf('crash:second')).toBe(2);

      const timer = (await api.finished('crash-timer', 60_000)).output as { t0: string; t1: string };
      expect(Date.parse(timer.t1) - Date.parse(timer.t0)).toBeGreaterThan(3_500);
      // At least once: the Functions host once applied all 20 signals twice across the kill (docs/runtimes.md #28).
      const signalled = await api.finished('crash-signals', 60_000);
      expect(signalled.runtimeStatus).toBe('Completed');
      expect(signalled.output).toBeGreaterThanOrEqual(20);
      expect(await entityState('crash', (state) => state !== undefined && state >= 20)).toBeGreaterThanOrEqual(20);
    }, 300_000);
  });
}

describe('orchestrations on the local host', () => {
  afterAll(stopAllHosts);
  conformance('local');
});

const realHostMissing = realHostAvailability.kind === 'unavailable' ? realHostAvailability.reason : undefined;
if (realHostMissing === undefined) {
  describe('orchestrations on the Functions host', () => conformance('real'));
} else if (process.env.REQUIRE_REAL_HOST === '1') {
  describe('orchestrations on the Functions host', () => {
    it('needs the real host (REQUIRE_REAL_HOST=1)', () => {
      throw new Error(`REQUIRE_REAL_HOST=1 but the real Functions host is not available: ${realHostMissing}.`);
    });
  });
} else {
  describe.skip(`orchestrations on the Functions host (not available here: ${realHostMissing})`, () => conformance('real'));
}
