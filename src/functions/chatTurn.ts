/** Wires the turn orchestration and its activities (durable/turnOrchestration.ts, chat/turnSteps.ts) to the runtime. */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { modelStepInputSchema, stopStepInputSchema, toolStepInputSchema } from '../chat/turn';
import { runModelStep, runStopStep, runToolStep } from '../chat/turnSteps';
import { durableTodoStore } from '../durable/todoEntityStore';
import { decodeStorable, encodeStorable } from '../durable/storableJson';
import { MODEL_STEP_ACTIVITY, STOP_STEP_ACTIVITY, TOOL_STEP_ACTIVITY, TURN_ORCHESTRATION, turnOrchestrator } from '../durable/turnOrchestration';
import { getModelClient } from '../model';
import { announceTurnRecords } from '../storage/streamHints';
import { getTurnStreamStore } from '../storage/turnStreamTable';

df.app.orchestration(TURN_ORCHESTRATION, turnOrchestrator);

df.app.activity(MODEL_STEP_ACTIVITY, {
  handler: async (input: unknown) =>
    encodeStorable(
      await runModelStep(modelStepInputSchema.parse(decodeStorable(input)), {
        model: getModelClient,
        streams: getTurnStreamStore(),
        announce: announceTurnRecords,
        now: Date.now,
      }),
    ),
});

// Tools reach the chat's todo list through the durable client.
df.app.activity(TOOL_STEP_ACTIVITY, {
  extraInputs: [df.input.durableClient()],
  handler: async (input: unknown, context: InvocationContext) =>
    encodeStorable(await runToolStep(toolStepInputSchema.parse(decodeStorable(input)), { todos: durableTodoStore(df.getClient(context)), now: () => new Date() })),
});

df.app.activity(STOP_STEP_ACTIVITY, {
  handler: async (input: unknown) => {
    await runStopStep(stopStepInputSchema.parse(decodeStorable(input)), { streams: getTurnStreamStore() });
    return null;
  },
});
