/**
 * Runs one episode of an orchestration through the app's registered orchestrationTrigger function —
 * the durable-functions SDK's own orchestrator, which replays the history through the user's
 * generator — and reads its answer (see sdkProtocol.ts).
 */
import type { OrchestrationFunction } from '../../catalog';
import type { RpcParameterBinding } from '../../worker/coreTypes';
import type { FunctionInvoker } from '../../worker/invoke';
import type { OrchestratorOutcome } from './episode';
import { sdkHistory, type HistoryEvent } from './history';
import { orchestratorTriggerInput, parseOrchestratorFailure, parseOrchestratorResponse } from './sdkProtocol';

export class OrchestratorRunner {
  constructor(
    private readonly invoker: FunctionInvoker,
    private readonly clientInputs: (bindingNames: string[]) => RpcParameterBinding[],
  ) {}

  /** `history` = the stored history plus this episode's OrchestratorStarted and messages; `pastCount` = the stored part. */
  async run(fn: OrchestrationFunction, instanceId: string, inputJson: string, history: HistoryEvent[], pastCount: number): Promise<OrchestratorOutcome> {
    const trigger = orchestratorTriggerInput({
      history: sdkHistory(history, pastCount),
      input: JSON.parse(inputJson) as unknown,
      instanceId,
      isReplaying: pastCount > 0,
    });
    try {
      const outcome = await this.invoker.invoke(fn.registered, {
        inputData: [{ name: fn.triggerBindingName, data: { string: JSON.stringify(trigger) } }, ...this.clientInputs(fn.durableClientBindingNames)],
      });
      return { kind: 'state', state: parseOrchestratorResponse(outcome.response) };
    } catch (err) {
      // The SDK reports a throwing orchestrator by throwing, with its state (actions so far, error) in the message.
      const state = parseOrchestratorFailure(err);
      if (state !== undefined) return { kind: 'state', state: { ...state, error: state.error ?? (err instanceof Error ? err.message : String(err)) } };
      return { kind: 'crashed', message: err instanceof Error ? err.message : String(err) };
    }
  }
}
