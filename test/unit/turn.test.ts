/**
 * A turn as its orchestration runs it: the real orchestrator (durable/turnOrchestration.ts) replayed
 * by durable-functions over a history of its activities (test/support/orchestration.ts), the turn's
 * rules (chat/turn.ts) deciding; and the model step activity (chat/turnSteps.ts) over a fake model.
 */
import { describe, expect, it } from 'vitest';
import type { ToolCallRecord, ToolResult, TurnOutcome, TurnPlan } from '../../src/chat/state';
import { modelStepInputSchema, toolStepInputSchema, TurnProgress, type ModelStepInput, type ModelStepOutput } from '../../src/chat/turn';
import { runModelStep, runStopStep } from '../../src/chat/turnSteps';
import type { TurnStreamRecord, TurnStreamStore } from '../../src/chat/turnStream';
import { decodeStorable, encodeStorable } from '../../src/durable/storableJson';
import { MODEL_STEP_ACTIVITY, STOP_STEP_ACTIVITY, TOOL_STEP_ACTIVITY, turnInstanceId, turnOrchestrator } from '../../src/durable/turnOrchestration';
import { ModelFailedError, ModelTimeoutError } from '../../src/errors';
import type { CompletionChunk, CompletionRequest, ModelClient } from '../../src/model/client';
import { runOrchestration, type ActivityCall, type EpisodeScript, type Pending } from '../support/orchestration';

const plan: TurnPlan = {
  chatId: 'c',
  messageId: 'm1',
  prompt: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What time is it, and what is on my list?' },
  ],
  tools: ['get_current_time', 'get_todos'],
  approvalTools: [],
  approvalTimeoutMs: 60_000,
  stream: false,
  userCreatedAt: '2026-01-15T22:00:01.000Z',
  maxToolRounds: 8,
};

const timeCall: ToolCallRecord = { id: 'call-1', name: 'get_current_time', arguments: '{}' };
const todosCall: ToolCallRecord = { id: 'call-2', name: 'get_todos', arguments: '{}' };
const answer = (text: string, totalTokens = 5): ModelStepOutput => ({ ok: true, text, toolCalls: [], totalTokens });
const callTools = (toolCalls: ToolCallRecord[], text = '', totalTokens = 5): ModelStepOutput => ({ ok: true, text, toolCalls, totalTokens });
const resultOf = (call: ToolCallRecord): ToolResult => ({ toolCallId: call.id, name: call.name, content: JSON.stringify({ ran: call.name }), failed: false });

/**
 * Runs the turn orchestration for `turnPlan`: model steps answered by `model` (given the step's input),
 * tool steps by `tool`; returns the activity calls, the outcome signalled to the chat, and the output.
 */
async function runTurn(turnPlan: TurnPlan, model: (step: ModelStepInput) => ModelStepOutput, tool: (call: ToolCallRecord) => ToolResult = resultOf, options: { completeInReverse?: boolean } = {}) {
  const run = await runOrchestration(
    turnOrchestrator,
    encodeStorable(turnPlan),
    (name, input) => {
      if (name === MODEL_STEP_ACTIVITY) return encodeStorable(model(modelStepInputSchema.parse(decodeStorable(input))));
      if (name === TOOL_STEP_ACTIVITY) return encodeStorable(tool(toolStepInputSchema.parse(decodeStorable(input)).call));
      throw new Error(`unknown activity ${name}`);
    },
    { instanceId: turnInstanceId(turnPlan.chatId, turnPlan.messageId), ...options },
  );
  const modelSteps = run.calls.filter((c) => c.name === MODEL_STEP_ACTIVITY).map((c) => modelStepInputSchema.parse(decodeStorable(c.input)));
  const toolSteps = run.calls.filter((c) => c.name === TOOL_STEP_ACTIVITY);
  expect(run.signals.map((s) => [s.instanceId, s.operation])).toEqual([['@chat@c', 'finishTurn']]);
  const outcome = decodeStorable(run.signals[0]?.input) as TurnOutcome;
  return { run, modelSteps, toolSteps, outcome };
}

describe('turn orchestration', () => {
  it('answers a turn without tools with one model call and signals the reply to its chat', async () => {
    const { run, modelSteps, toolSteps, outcome } = await runTurn(plan, () => answer('It is late.', 12));
    expect(modelSteps).toEqual([{ chatId: 'c', messageId: 'm1', round: 1, prompt: plan.prompt, tools: plan.tools, stream: false, userCreatedAt: plan.userCreatedAt, previousResults: [] }]);
    expect(toolSteps).toEqual([]);
    expect(outcome).toEqual({ messageId: 'm1', rounds: [], end: { kind: 'replied', text: 'It is late.' }, totalTokens: 12 });
    expect(run.output).toEqual({ messageId: 'm1', rounds: 0 });
    expect(run.error).toBeUndefined();
  });

  it('runs the parallel calls of a tool round side by side, keeps their results in call order, and shows them to the model', async () => {
    const model = (step: ModelStepInput) => (step.round === 1 ? callTools([timeCall, todosCall], 'Let me look.', 7) : answer('22:00; nothing on your list.', 9));
    const { modelSteps, toolSteps, outcome } = await runTurn(plan, model, resultOf, { completeInReverse: true });
    // Both tool calls were scheduled in the same episode, i.e. together.
    expect(toolSteps.map((c: ActivityCall) => [c.episode, (decodeStorable(c.input) as { call: ToolCallRecord }).call.id])).toEqual([
      [2, 'call-1'],
      [2, 'call-2'],
    ]);
    expect(toolStepInputSchema.parse(decodeStorable(toolSteps[0]?.input))).toEqual({ chatId: 'c', call: timeCall, tools: plan.tools });
    const results = [resultOf(timeCall), resultOf(todosCall)];
    expect(modelSteps[1]).toMatchObject({ round: 2, tools: plan.tools, previousResults: results });
    expect(modelSteps[1]?.prompt).toEqual([
      ...plan.prompt,
      { role: 'assistant', content: 'Let me look.', toolCalls: [timeCall, todosCall] },
      { role: 'tool', toolCallId: 'call-1', content: results[0]?.content },
      { role: 'tool', toolCallId: 'call-2', content: results[1]?.content },
    ]);
    expect(outcome).toEqual({
      messageId: 'm1',
      rounds: [{ text: 'Let me look.', toolCalls: [timeCall, todosCall], results }],
      end: { kind: 'replied', text: '22:00; nothing on your list.' },
      totalTokens: 16,
    });
  });

  it('passes a failed tool call to the model as a result, not a failed turn', async () => {
    const failing = (call: ToolCallRecord): ToolResult => ({ toolCallId: call.id, name: call.name, content: '{"error":"There is no task with id 7."}', failed: true });
    const { outcome } = await runTurn(plan, (step) => (step.round === 1 ? callTools([todosCall]) : answer('That task does not exist.')), failing);
    expect(outcome.rounds[0]?.results).toEqual([failing(todosCall)]);
    expect(outcome.end).toEqual({ kind: 'replied', text: 'That task does not exist.' });
  });

  it('ends the turn with a failed-turn record when a model call fails, keeping the text it had streamed and its attempt', async () => {
    const failed: ModelStepOutput = { ok: false, code: 'model_timeout', message: 'The model did not answer in time.', partialText: 'It is', totalTokens: 0, streamAttempt: 'a2' };
    const { modelSteps, outcome } = await runTurn({ ...plan, stream: true }, (step) => (step.round === 1 ? { ...callTools([timeCall], '', 4), streamAttempt: 'a1' } : failed));
    expect(modelSteps.map((s) => [s.round, s.stream])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(outcome).toEqual({
      messageId: 'm1',
      rounds: [{ text: '', toolCalls: [timeCall], results: [resultOf(timeCall)], streamAttempt: 'a1' }],
      end: { kind: 'failed', code: 'model_timeout', message: 'The model did not answer in time.', partialText: 'It is' },
      totalTokens: 4,
      streamAttempt: 'a2',
    });
  });

  it('offers tools for at most the round limit, then asks for an answer without tools', async () => {
    let n = 0;
    const eager = (step: ModelStepInput) => (step.tools.length > 0 ? callTools([{ ...timeCall, id: `call-${++n}` }]) : answer('Enough checking: 22:00.'));
    const { modelSteps, outcome } = await runTurn({ ...plan, maxToolRounds: 2 }, eager);
    expect(modelSteps.map((s) => [s.round, s.tools])).toEqual([
      [1, plan.tools],
      [2, plan.tools],
      [3, []],
    ]);
    expect(outcome.rounds.map((r) => r.toolCalls.map((c) => c.id))).toEqual([['call-1'], ['call-2']]);
    expect(outcome.end).toEqual({ kind: 'replied', text: 'Enough checking: 22:00.' });
  });

  it('fails the turn with tool_round_limit when the model calls tools after the limit anyway', async () => {
    const { modelSteps, toolSteps, outcome } = await runTurn({ ...plan, maxToolRounds: 1 }, () => callTools([timeCall], 'Let me check once more.'));
    expect(modelSteps.map((s) => s.tools.length)).toEqual([2, 0]);
    expect(toolSteps).toHaveLength(1);
    expect(outcome.rounds).toHaveLength(1);
    expect(outcome.end).toMatchObject({ kind: 'failed', code: 'tool_round_limit', partialText: 'Let me check once more.' });
    expect(outcome.end.kind === 'failed' && outcome.end.message).toContain('1 tool rounds');
  });

  it('never offers tools with a round limit of 0, or to a chat without tools', async () => {
    const none = await runTurn({ ...plan, maxToolRounds: 0 }, () => answer('ok'));
    expect(none.modelSteps.map((s) => s.tools)).toEqual([[]]);
    const noTools = await runTurn({ ...plan, tools: [] }, () => answer('ok'));
    expect(noTools.modelSteps.map((s) => s.tools)).toEqual([[]]);
  });

  it('still tells its chat the turn ended when an activity fails, so the chat does not wait for it forever', async () => {
    const { run, outcome } = await runTurn(
      plan,
      (step) => (step.round === 1 ? callTools([timeCall]) : answer('never')),
      () => {
        throw new Error('The activity timed out.');
      },
    );
    expect(run.error).toBeUndefined();
    expect(outcome).toMatchObject({ messageId: 'm1', end: { kind: 'failed', code: 'turn_incomplete' } });
    // The call left without a result gets an error result: later prompts need one for every call.
    expect(outcome.rounds).toEqual([{ text: '', toolCalls: [timeCall], results: [{ toolCallId: 'call-1', name: 'get_current_time', content: '{"error":"The tool call failed."}', failed: true }] }]);
  });

  it('ends the turn as failed when its model step activity fails, with the rounds done before it', async () => {
    const { run, outcome } = await runTurn(plan, (s) => {
      if (s.round === 2) throw new Error('The activity timed out.');
      return callTools([timeCall]);
    });
    expect(run.error).toBeUndefined();
    expect(outcome.rounds).toEqual([{ text: '', toolCalls: [timeCall], results: [resultOf(timeCall)] }]);
    expect(outcome.end).toMatchObject({ kind: 'failed', code: 'turn_incomplete' });
  });
});

describe('turn orchestration: approvals and cancel', () => {
  const removeCall: ToolCallRecord = { id: 'call-r', name: 'remove_todo', arguments: '{"id":1}' };
  const approvalPlan: TurnPlan = { ...plan, tools: ['get_current_time', 'remove_todo'], approvalTools: ['remove_todo'] };

  /**
   * Runs a turn whose first reply calls `calls` and whose second answers 'Done.'; `script` decides
   * each episode (events, timers, which activities complete). Returns what ran and what was signalled.
   */
  async function runScripted(calls: ToolCallRecord[], script: (pending: Pending) => EpisodeScript, model?: (step: ModelStepInput) => ModelStepOutput) {
    const timeline: Pending[] = [];
    const run = await runOrchestration(
      turnOrchestrator,
      encodeStorable(approvalPlan),
      (name, input) => {
        if (name === MODEL_STEP_ACTIVITY) {
          const stepInput = modelStepInputSchema.parse(decodeStorable(input));
          return encodeStorable(model?.(stepInput) ?? (stepInput.round === 1 ? callTools(calls, 'Let me do that.') : answer('Done.')));
        }
        if (name === TOOL_STEP_ACTIVITY) return encodeStorable(resultOf(toolStepInputSchema.parse(decodeStorable(input)).call));
        if (name === STOP_STEP_ACTIVITY) return null;
        throw new Error(`unknown activity ${name}`);
      },
      {
        instanceId: turnInstanceId('c', 'm1'),
        script: (pending) => {
          timeline.push(pending);
          return script(pending);
        },
      },
    );
    expect(run.error).toBeUndefined();
    const signals = run.signals.map((sig) => ({ operation: sig.operation, input: decodeStorable(sig.input) as Record<string, unknown> }));
    const outcome = signals.find((sig) => sig.operation === 'finishTurn')?.input as unknown as TurnOutcome;
    const ranTools = run.calls.filter((c) => c.name === TOOL_STEP_ACTIVITY).map((c) => (decodeStorable(c.input) as { call: ToolCallRecord }).call.id);
    return { run, signals, outcome, ranTools, timeline };
  }

  /** Raises `name` once, when the orchestration first waits for it with nothing else to do. */
  function answerWhenAsked(name: string, data: unknown) {
    let raised = false;
    return (pending: Pending): EpisodeScript => {
      if (!raised && pending.activities.length === 0 && pending.events.includes(name)) {
        raised = true;
        return { raise: [{ name, data }] };
      }
      return {};
    };
  }

  it('asks for the approval of a call that needs it, runs it once approved, and cancels the expiry timer', async () => {
    const { signals, outcome, ranTools, timeline } = await runScripted([removeCall, timeCall], answerWhenAsked('approval-1', { approved: true, answerId: 'x1' }));
    expect(signals.map((sig) => sig.operation)).toEqual(['awaitApprovals', 'settleApproval', 'finishTurn']);
    expect(signals[0]?.input).toEqual({
      messageId: 'm1',
      approvals: [{ toolCallId: 'call-r', name: 'remove_todo', arguments: '{"id":1}', round: 1, event: 'approval-1', requestedAt: expect.any(String), expiresAt: expect.any(String) }],
    });
    const approvals = signals[0]?.input.approvals as { requestedAt: string; expiresAt: string }[];
    expect(Date.parse(approvals[0]?.expiresAt ?? '') - Date.parse(approvals[0]?.requestedAt ?? '')).toBe(approvalPlan.approvalTimeoutMs);
    expect(signals[1]?.input).toEqual({ messageId: 'm1', toolCallId: 'call-r', decision: { approved: true, by: 'user', answerId: 'x1' } });
    // Nothing ran before the answer; then both calls ran, each once.
    expect(ranTools.sort()).toEqual(['call-1', 'call-r']);
    expect(outcome.rounds[0]?.results).toEqual([{ ...resultOf(removeCall), approval: { approved: true, by: 'user', answerId: 'x1' } }, resultOf(timeCall)]);
    expect(outcome.end).toEqual({ kind: 'replied', text: 'Done.' });
    // The timer that lost was cancelled: it was pending while the turn waited, and no longer after.
    expect(timeline.some((p) => p.timers.length === 1)).toBe(true);
    expect(timeline.at(-1)?.timers).toEqual([]);
  });

  it('tells the model a denied call was denied, with the reason, and does not run it', async () => {
    const seen: ModelStepInput[] = [];
    const { signals, outcome, ranTools } = await runScripted([removeCall, timeCall], answerWhenAsked('approval-1', { approved: false, reason: 'keep it' }), (stepInput) => {
      seen.push(stepInput);
      return stepInput.round === 1 ? callTools([removeCall, timeCall], 'Let me do that.') : answer('I left it.');
    });
    expect(ranTools).toEqual(['call-1']);
    expect(signals[1]?.input.decision).toEqual({ approved: false, by: 'user', reason: 'keep it' });
    const denied = outcome.rounds[0]?.results[0];
    expect(denied).toMatchObject({ toolCallId: 'call-r', failed: true, approval: { approved: false, by: 'user' } });
    expect(JSON.parse(denied?.content ?? '{}')).toEqual({ error: 'The user denied this tool call; it did not run.', reason: 'keep it' });
    expect(seen[1]?.previousResults[0]).toEqual(denied);
    expect(outcome.end).toEqual({ kind: 'replied', text: 'I left it.' });
  });

  it('counts a call nobody answered in time as denied when its timer fires', async () => {
    const { signals, outcome, ranTools } = await runScripted([removeCall], (pending) => (pending.activities.length === 0 && pending.timers.length > 0 ? { fireTimers: pending.timers.map((t) => t.seq) } : {}));
    expect(ranTools).toEqual([]);
    expect(signals[1]?.input.decision).toEqual({ approved: false, by: 'timeout' });
    expect(JSON.parse(outcome.rounds[0]?.results[0]?.content ?? '{}')).toEqual({ error: 'No one approved this tool call in time; it did not run.' });
    expect(outcome.end).toEqual({ kind: 'replied', text: 'Done.' });
  });

  it('takes answers to later calls that came while an earlier call waited', async () => {
    const second: ToolCallRecord = { ...removeCall, id: 'call-r2', arguments: '{"id":2}' };
    let raised = false;
    const { signals, ranTools } = await runScripted([removeCall, second], (pending) => {
      if (raised || pending.activities.length > 0) return {};
      raised = true;
      return { raise: [{ name: 'approval-2', data: { approved: true } }, { name: 'approval-1', data: { approved: false } }] };
    });
    expect(signals.filter((sig) => sig.operation === 'settleApproval').map((sig) => [sig.input.toolCallId, (sig.input.decision as { approved: boolean }).approved])).toEqual([
      ['call-r', false],
      ['call-r2', true],
    ]);
    expect(ranTools).toEqual(['call-r2']);
  });

  it('ends a turn cancelled while it waits for approval as cancelled, running none of the round’s calls', async () => {
    const { signals, outcome, ranTools, run } = await runScripted([removeCall, timeCall], answerWhenAsked('cancel', {}));
    expect(ranTools).toEqual([]);
    expect(run.calls.filter((c) => c.name === MODEL_STEP_ACTIVITY)).toHaveLength(1);
    expect(signals.map((sig) => sig.operation)).toEqual(['awaitApprovals', 'settleApproval', 'finishTurn']);
    expect(signals[1]?.input.decision).toEqual({ approved: false, by: 'cancel' });
    expect(outcome.rounds[0]?.results.map((r) => [r.toolCallId, r.failed])).toEqual([
      ['call-r', true],
      ['call-1', true],
    ]);
    expect(outcome.end).toEqual({ kind: 'cancelled', partialText: '' });
  });

  it('stops a model call when its turn is cancelled, and keeps the text it had produced', async () => {
    let raised = false;
    const { outcome, run } = await runScripted(
      [],
      () => {
        if (raised) return {};
        raised = true;
        // The cancel comes while the model step runs: it is held back until the stop step has run.
        return { raise: [{ name: 'cancel', data: {} }], complete: [] };
      },
      () => ({ ok: false, code: 'cancelled', message: 'The turn was cancelled.', partialText: 'Half an ans', totalTokens: 2 }),
    );
    // The stop step was scheduled while the model step ran; both completed afterwards.
    expect(run.calls.map((c) => [c.name, c.episode])).toEqual([
      [MODEL_STEP_ACTIVITY, 1],
      [STOP_STEP_ACTIVITY, 2],
    ]);
    expect(outcome).toMatchObject({ rounds: [], end: { kind: 'cancelled', partialText: 'Half an ans' }, totalTokens: 2 });
  });

  it('lets tool calls that started finish when the turn is cancelled, and asks the model nothing more', async () => {
    let raised = false;
    const { outcome, run, ranTools } = await runScripted([timeCall], (pending) => {
      if (raised || !pending.activities.some((a) => a.name === TOOL_STEP_ACTIVITY)) return {};
      raised = true;
      return { raise: [{ name: 'cancel', data: {} }], complete: [] };
    });
    expect(ranTools).toEqual(['call-1']);
    expect(run.calls.filter((c) => c.name === MODEL_STEP_ACTIVITY)).toHaveLength(1);
    expect(outcome.rounds[0]?.results).toEqual([resultOf(timeCall)]);
    expect(outcome.end).toEqual({ kind: 'cancelled', partialText: '' });
  });
});

describe('TurnProgress', () => {
  it('counts tokens over every model call and carries each round’s attempt', () => {
    const turn = new TurnProgress({ ...plan, stream: true });
    expect(turn.done).toBe(false);
    expect(turn.afterModel({ ...callTools([timeCall], 'a', 3), streamAttempt: 'a1' }, plan.tools)).toEqual([timeCall]);
    turn.afterTools([timeCall], [resultOf(timeCall)]);
    expect(turn.nextModelStep()).toMatchObject({ round: 2, previousResults: [resultOf(timeCall)] });
    expect(turn.afterModel({ ...answer('b', 4), streamAttempt: 'a2' }, plan.tools)).toEqual([]);
    expect(turn.done).toBe(true);
    expect(turn.outcome()).toMatchObject({ totalTokens: 7, streamAttempt: 'a2', rounds: [{ streamAttempt: 'a1' }] });
  });

  it('reports a turn that ended before its model answered as failed, not as an empty reply', () => {
    expect(new TurnProgress(plan).outcome()).toMatchObject({ messageId: 'm1', rounds: [], end: { kind: 'failed' } });
  });
});

/** A model whose every call is answered by `reply` (a completion, chunks to stream, or an error). */
function fakeModel(reply: { text?: string; toolCalls?: ToolCallRecord[]; failAfter?: Error; fail?: Error }) {
  const requests: CompletionRequest[] = [];
  const client: ModelClient = {
    async complete(request) {
      requests.push(request);
      if (reply.fail !== undefined) throw reply.fail;
      return { text: reply.text ?? '', toolCalls: reply.toolCalls ?? [], promptTokens: 1, completionTokens: 2, totalTokens: 3 };
    },
    async stream(request) {
      requests.push(request);
      if (reply.fail !== undefined) throw reply.fail;
      return (async function* (): AsyncGenerator<CompletionChunk> {
        for (const piece of (reply.text ?? '').split(/(?<= )/)) yield { type: 'delta', text: piece };
        if (reply.failAfter !== undefined) throw reply.failAfter;
        yield { type: 'usage', promptTokens: 1, completionTokens: 2, totalTokens: 3 };
        if (reply.toolCalls !== undefined) yield { type: 'tool-calls', calls: reply.toolCalls };
      })();
    },
  };
  return { client, requests };
}

function memoryStreams() {
  const records: TurnStreamRecord[] = [];
  const stop = { requested: false };
  const store: TurnStreamStore = {
    append: async (_chatId, _messageId, more) => void records.push(...more),
    readAfter: async () => [...records],
    deleteTurn: async () => {},
    requestStop: async () => void (stop.requested = true),
    stopRequested: async () => stop.requested,
  };
  return { store, records, stop };
}

const step: ModelStepInput = { chatId: 'c', messageId: 'm1', round: 1, prompt: plan.prompt, tools: [], stream: false, userCreatedAt: plan.userCreatedAt, previousResults: [] };

describe('runModelStep', () => {
  it('stops a streamed call once its turn’s stop is requested, answering with the text so far', async () => {
    const streams = memoryStreams();
    let release: () => void = () => {};
    const client: ModelClient = {
      complete: async () => {
        throw new Error('not used');
      },
      async stream() {
        return (async function* (): AsyncGenerator<CompletionChunk> {
          yield { type: 'delta', text: 'Half ' };
          yield { type: 'delta', text: 'an ans' };
          await new Promise<void>((resolve) => (release = resolve));
          yield { type: 'delta', text: 'wer never sent' };
        })();
      },
    };
    const running = runModelStep({ ...step, stream: true }, { model: () => client, streams: streams.store, announce: () => {}, now: () => 1_000 });
    await runStopStep({ chatId: 'c', messageId: 'm1' }, { streams: streams.store });
    const output = await running;
    release();
    expect(output).toMatchObject({ ok: false, code: 'cancelled', partialText: 'Half an ans' });
    expect(streams.records.at(-1)).toMatchObject({ kind: 'end' });
  });

  it('stops a call that is not streamed too, with no text', async () => {
    const streams = memoryStreams();
    streams.stop.requested = true;
    const client: ModelClient = {
      complete: () => new Promise(() => {}),
      stream: () => new Promise(() => {}),
    };
    expect(await runModelStep(step, { model: () => client, streams: streams.store, announce: () => {}, now: () => 0 })).toMatchObject({ ok: false, code: 'cancelled', partialText: '' });
  });

  it('calls the model with the tools of the step as JSON Schema specs, and none at all when none are offered', async () => {
    const model = fakeModel({ text: 'ok', toolCalls: [timeCall] });
    const ports = { model: () => model.client, streams: undefined, announce: () => {}, now: () => 0 };
    expect(await runModelStep({ ...step, tools: ['get_current_time'] }, ports)).toEqual({ ok: true, text: 'ok', toolCalls: [timeCall], totalTokens: 3 });
    expect(model.requests[0]?.tools?.map((t) => t.name)).toEqual(['get_current_time']);
    await runModelStep(step, ports);
    expect(model.requests[1]).toEqual({ messages: plan.prompt });
  });

  it.each([
    [new ModelTimeoutError('late'), 'model_timeout'],
    [new ModelFailedError('down'), 'model_failed'],
    [new Error('socket hang up'), 'model_failed'],
  ])('turns a model failure (%s) into a failed step with its code', async (failure, code) => {
    const model = fakeModel({ fail: failure });
    expect(await runModelStep(step, { model: () => model.client, streams: undefined, announce: () => {}, now: () => 0 })).toMatchObject({ ok: false, code, partialText: '', totalTokens: 0 });
  });

  it('publishes a streamed step under a new attempt: its round and the previous results, the text, the calls it asked for', async () => {
    const streams = memoryStreams();
    const model = fakeModel({ text: 'Checking the time.', toolCalls: [timeCall] });
    const announced: string[] = [];
    const previousResults = [resultOf(todosCall)];
    const output = await runModelStep({ ...step, round: 2, stream: true, tools: ['get_current_time'], previousResults }, { model: () => model.client, streams: streams.store, announce: (chatId) => announced.push(chatId), now: () => 1_000 });
    expect(output).toMatchObject({ ok: true, text: 'Checking the time.', toolCalls: [timeCall], totalTokens: 3, streamAttempt: expect.stringMatching(/^[0-9a-z]{13}$/) });
    const attempt = output.streamAttempt;
    expect(streams.records[0]).toEqual({ key: `${attempt}~000000`, attempt, kind: 'start', round: 2, userMessageId: 'm1', userCreatedAt: plan.userCreatedAt, toolResults: previousResults });
    expect(streams.records.filter((r) => r.kind === 'text').map((r) => (r.kind === 'text' ? r.text : '')).join('')).toBe('Checking the time.');
    expect(streams.records.at(-1)).toEqual({ key: expect.any(String), attempt, kind: 'end', toolCalls: [timeCall] });
    expect(new Set(announced)).toEqual(new Set(['c']));
  });

  it('keeps the text a streamed step had published when the stream fails, and ends its records', async () => {
    const streams = memoryStreams();
    const model = fakeModel({ text: 'It is ', failAfter: new ModelFailedError('The model stream ended early.') });
    const output = await runModelStep({ ...step, stream: true }, { model: () => model.client, streams: streams.store, announce: () => {}, now: () => 1_000 });
    expect(output).toMatchObject({ ok: false, code: 'model_failed', message: 'The model stream ended early.', partialText: 'It is ' });
    expect(streams.records.at(-1)).toMatchObject({ kind: 'end', attempt: output.streamAttempt });
    expect(streams.records.at(-1)).not.toHaveProperty('toolCalls');
  });

  it('answers a streamed step without a stream store when it is done', async () => {
    const model = fakeModel({ text: 'plain' });
    expect(await runModelStep({ ...step, stream: true }, { model: () => model.client, streams: undefined, announce: () => {}, now: () => 0 })).toEqual({ ok: true, text: 'plain', toolCalls: [], totalTokens: 3 });
  });
});
