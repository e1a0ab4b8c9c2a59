/**
 * One turn as its orchestration runs it: model calls and tool rounds, until the model answers
 * without calling a tool, fails, or reaches the round limit. Plain TypeScript and deterministic — the
 * orchestrator (durable/turnOrchestration.ts) only carries what this decides to its activities and
 * back — so the turn's rules are unit-tested without a runtime.
 */
import { z } from 'zod';
import type { PromptMessage } from '../model/client';
import type { ApprovalDecision, ApprovalRequest, ToolCallRecord, ToolResult, ToolRound, TurnEnd, TurnOutcome, TurnPlan } from './state';

/** What one model call of a turn gets (the model step activity). */
export interface ModelStepInput {
  chatId: string;
  messageId: string;
  /** 1 for the first call of the turn; each tool round adds one. */
  round: number;
  prompt: PromptMessage[];
  /** The tools offered in this call (none after the round limit). */
  tools: string[];
  stream: boolean;
  userCreatedAt: string;
  /** The results of the previous round's calls, published with this call's streamed text. */
  previousResults: ToolResult[];
}

export type ModelStepOutput =
  | { ok: true; text: string; toolCalls: ToolCallRecord[]; totalTokens: number; streamAttempt?: string }
  | { ok: false; code: string; message: string; partialText: string; totalTokens: number; streamAttempt?: string };

/** What one tool call of a turn gets (the tool step activity). */
export interface ToolStepInput {
  chatId: string;
  call: ToolCallRecord;
  /** The chat's tools: a call of any other name is answered with an error. */
  tools: string[];
}

/** What stops a running model call when its turn is cancelled (the stop step activity). */
export interface StopStepInput {
  chatId: string;
  messageId: string;
}

export const toolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });
export const approvalDecisionSchema = z.object({ approved: z.boolean(), by: z.enum(['user', 'timeout', 'cancel']), reason: z.string().optional(), answerId: z.string().optional() });
export const approvalRequestSchema = z.object({ toolCallId: z.string(), name: z.string(), arguments: z.string(), round: z.number().int().positive(), event: z.string().min(1), requestedAt: z.string(), expiresAt: z.string() });
export const toolResultSchema = z.object({ toolCallId: z.string(), name: z.string(), content: z.string(), failed: z.boolean(), approval: approvalDecisionSchema.optional() });
/** A person's answer to an approval request, as the turn's orchestration receives it (an external event). */
export const approvalAnswerSchema = z.object({ approved: z.boolean(), reason: z.string().optional(), answerId: z.string().optional() });
export type ApprovalAnswer = z.infer<typeof approvalAnswerSchema>;
const promptMessage = z.union([
  z.object({ role: z.enum(['system', 'user']), content: z.string() }),
  z.object({ role: z.literal('assistant'), content: z.string(), toolCalls: z.array(toolCallSchema).optional() }),
  z.object({ role: z.literal('tool'), toolCallId: z.string(), content: z.string() }),
]);

// Inputs and outputs cross the task hub's storage: validated where they are read, like any input.
export const turnPlanSchema = z.object({
  chatId: z.string().min(1),
  messageId: z.string().min(1),
  prompt: z.array(promptMessage),
  tools: z.array(z.string()),
  approvalTools: z.array(z.string()),
  approvalTimeoutMs: z.number().int().positive(),
  stream: z.boolean(),
  userCreatedAt: z.string(),
  maxToolRounds: z.number().int().nonnegative(),
});
export const modelStepInputSchema = z.object({
  chatId: z.string().min(1),
  messageId: z.string().min(1),
  round: z.number().int().positive(),
  prompt: z.array(promptMessage),
  tools: z.array(z.string()),
  stream: z.boolean(),
  userCreatedAt: z.string(),
  previousResults: z.array(toolResultSchema),
});
export const modelStepOutputSchema = z.union([
  z.object({ ok: z.literal(true), text: z.string(), toolCalls: z.array(toolCallSchema), totalTokens: z.number(), streamAttempt: z.string().optional() }),
  z.object({ ok: z.literal(false), code: z.string(), message: z.string(), partialText: z.string(), totalTokens: z.number(), streamAttempt: z.string().optional() }),
]);
export const toolStepInputSchema = z.object({ chatId: z.string().min(1), call: toolCallSchema, tools: z.array(z.string()) });
export const stopStepInputSchema = z.object({ chatId: z.string().min(1), messageId: z.string().min(1) });
/** A finished turn, as its orchestration signals it to the chat. */
export const turnOutcomeSchema = z.object({
  messageId: z.string().min(1),
  rounds: z.array(z.object({ text: z.string(), toolCalls: z.array(toolCallSchema), results: z.array(toolResultSchema), streamAttempt: z.string().optional() })),
  end: z.union([
    z.object({ kind: z.literal('replied'), text: z.string() }),
    z.object({ kind: z.literal('failed'), code: z.string(), message: z.string(), partialText: z.string() }),
    z.object({ kind: z.literal('cancelled'), partialText: z.string() }),
  ]),
  totalTokens: z.number().nonnegative(),
  streamAttempt: z.string().optional(),
});

/** The external event of a turn's orchestration that cancels the turn; approvals have their own (ApprovalRequest.event). */
export const CANCEL_EVENT = 'cancel';

/** The code a model step answers with when its turn was cancelled while it ran. */
export const CANCELLED_CODE = 'cancelled';

export class TurnProgress {
  private readonly rounds: ToolRound[] = [];
  private tokens = 0;
  private end: TurnEnd | undefined;
  private lastAttempt: string | undefined;
  private approvalsAsked = 0;
  private readonly decisions = new Map<string, ApprovalDecision>();

  constructor(private readonly plan: TurnPlan) {}

  get done(): boolean {
    return this.end !== undefined;
  }

  /** The next model call: the plan's prompt followed by every tool round so far. */
  nextModelStep(): ModelStepInput {
    const round = this.rounds.length + 1;
    const steps = this.rounds.flatMap((r): PromptMessage[] => [
      { role: 'assistant', content: r.text, toolCalls: r.toolCalls },
      ...r.results.map((res): PromptMessage => ({ role: 'tool', toolCallId: res.toolCallId, content: res.content })),
    ]);
    return {
      chatId: this.plan.chatId,
      messageId: this.plan.messageId,
      round,
      prompt: [...this.plan.prompt, ...steps],
      tools: round <= this.plan.maxToolRounds ? this.plan.tools : [],
      stream: this.plan.stream,
      userCreatedAt: this.plan.userCreatedAt,
      previousResults: this.rounds.at(-1)?.results ?? [],
    };
  }

  /** Takes a model call's output: the calls to run now, or none when the turn is done. */
  afterModel(output: ModelStepOutput, offered: readonly string[]): ToolCallRecord[] {
    this.tokens += output.totalTokens;
    this.lastAttempt = output.streamAttempt;
    if (!output.ok && output.code === CANCELLED_CODE) {
      this.end = { kind: 'cancelled', partialText: output.partialText };
      return [];
    }
    if (!output.ok) {
      this.end = { kind: 'failed', code: output.code, message: output.message, partialText: output.partialText };
      return [];
    }
    if (output.toolCalls.length === 0) {
      this.end = { kind: 'replied', text: output.text };
      return [];
    }
    if (offered.length === 0) {
      const message = `The model asked for tools after the limit of ${this.plan.maxToolRounds} tool rounds in a turn.`;
      this.end = { kind: 'failed', code: 'tool_round_limit', message, partialText: output.text };
      return [];
    }
    const round: ToolRound = { text: output.text, toolCalls: output.toolCalls, results: [] };
    if (output.streamAttempt !== undefined) round.streamAttempt = output.streamAttempt;
    this.rounds.push(round);
    return output.toolCalls;
  }

  /**
   * The approvals the calls of a round need, asked for at `now`: each is answered by its own external
   * event (numbered along the turn) and expires after the plan's timeout.
   */
  approvalsFor(calls: readonly ToolCallRecord[], now: Date): ApprovalRequest[] {
    const round = this.rounds.length;
    const expiresAt = new Date(now.getTime() + this.plan.approvalTimeoutMs).toISOString();
    return calls
      .filter((call) => this.plan.approvalTools.includes(call.name))
      .map((call) => ({ toolCallId: call.id, name: call.name, arguments: call.arguments, round, event: `approval-${++this.approvalsAsked}`, requestedAt: now.toISOString(), expiresAt }));
  }

  decide(toolCallId: string, decision: ApprovalDecision): void {
    this.decisions.set(toolCallId, decision);
  }

  /** The calls of a round that run: those that need no approval, and the approved ones. */
  runnable(calls: readonly ToolCallRecord[]): ToolCallRecord[] {
    return calls.filter((call) => !this.plan.approvalTools.includes(call.name) || this.decisions.get(call.id)?.approved === true);
  }

  toolStep(call: ToolCallRecord): ToolStepInput {
    return { chatId: this.plan.chatId, call, tools: this.plan.tools };
  }

  /**
   * Records the results of the last round's calls, in the order of the calls: `ran` holds those of the
   * calls that ran; a call that did not run gets its decision (denied, expired) or, when the turn was
   * cancelled first (`cancelled`), an error result, as the model's API needs a result for every call.
   */
  afterTools(calls: readonly ToolCallRecord[], ran: readonly ToolResult[], cancelled = false): void {
    const round = this.rounds.at(-1);
    if (round === undefined) return;
    round.results = calls.map((call): ToolResult => {
      const decision = this.decisions.get(call.id);
      const result = ran.find((r) => r.toolCallId === call.id);
      if (result !== undefined) return decision === undefined ? result : { ...result, approval: decision };
      const notRun = (error: string, extra: Record<string, string> = {}): ToolResult => ({ toolCallId: call.id, name: call.name, content: JSON.stringify({ error, ...extra }), failed: true });
      if (decision?.by === 'user' && !decision.approved) return { ...notRun('The user denied this tool call; it did not run.', decision.reason === undefined ? {} : { reason: decision.reason }), approval: decision };
      if (decision?.by === 'timeout') return { ...notRun('No one approved this tool call in time; it did not run.'), approval: decision };
      if (decision?.by === 'cancel') return { ...notRun('The turn was cancelled before this tool call ran.'), approval: decision };
      return notRun(cancelled ? 'The turn was cancelled before this tool call ran.' : 'The tool call failed.');
    });
  }

  /** Ends the turn as cancelled, keeping the text (and counting the tokens) of a model call it stopped. */
  cancel(partialText: string, stopped?: ModelStepOutput): void {
    if (stopped !== undefined) {
      this.tokens += stopped.totalTokens;
      this.lastAttempt = stopped.streamAttempt;
    }
    this.end = { kind: 'cancelled', partialText };
  }

  outcome(): TurnOutcome {
    const outcome: TurnOutcome = { messageId: this.plan.messageId, rounds: this.rounds, end: this.end ?? { kind: 'failed', code: 'turn_incomplete', message: 'The turn ended early.', partialText: '' }, totalTokens: this.tokens };
    if (this.lastAttempt !== undefined) outcome.streamAttempt = this.lastAttempt;
    return outcome;
  }
}
