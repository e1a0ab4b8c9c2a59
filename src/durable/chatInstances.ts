/**
 * The task hub instances a chat owns, as its entity manages them through its durable client: turn
 * orchestrations, started once per turn (a repeated start of an existing instance is not an error)
 * and purged once finished, so the hub does not grow with finished turns; its expiry orchestration;
 * and, when the chat is
 * deleted, the instances of its other entities (history pages, todo list), purged outright.
 */
import type { DurableClient } from './chatEntityStore';
import { TURN_ORCHESTRATION } from './turnOrchestration';
import { CHAT_EXPIRY_ORCHESTRATION } from './chatExpiry';
import type { TurnPlan } from '../chat/state';
import { encodeStorable } from './storableJson';

const FINISHED = new Set(['Completed', 'Failed', 'Terminated', 'Canceled']);

/** What the instance is: 'missing' (never started, or purged), 'running' (or pending), or 'finished'. */
async function instanceState(client: DurableClient, instanceId: string): Promise<'missing' | 'running' | 'finished'> {
  try {
    const status = await client.getStatus(instanceId);
    return FINISHED.has(String(status.runtimeStatus)) ? 'finished' : 'running';
  } catch (err) {
    if (err instanceof Error && err.message.includes('HTTP 404')) return 'missing';
    throw err;
  }
}

/**
 * Starts the turn's orchestration. An entity operation can run again after a crash: a start of an
 * instance that exists already is refused by the runtime and is not an error here.
 */
async function startOnce(client: DurableClient, name: string, instanceId: string, input: unknown): Promise<void> {
  try {
    await client.startNew(name, { instanceId, input });
  } catch (err) {
    if ((await instanceState(client, instanceId)) === 'missing') throw err;
  }
}

/** Purges finished instances; returns those whose purge failed (to try again later). */
export async function purgeTurns(client: DurableClient, instanceIds: readonly string[]): Promise<string[]> {
  const failed = await Promise.all(instanceIds.map((id) => client.purgeInstanceHistory(id).then(() => undefined, () => id)));
  return failed.filter((id): id is string => id !== undefined);
}

/** Purges an instance once it has finished, looking for up to `waitMs`; false if it had not finished by then. */
export async function purgeTurnWhenFinished(client: DurableClient, instanceId: string, waitMs: number, sleep = defaultSleep): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    const state = await instanceState(client, instanceId).catch(() => 'running' as const);
    if (state === 'missing') return true;
    if (state === 'finished') return (await purgeTurns(client, [instanceId])).length === 0;
    if (Date.now() + pause > deadline) return false;
    await sleep(pause);
  }
}

/** Ends a turn that is still running (its chat was deleted), so it can be purged. */
export async function terminateTurn(client: DurableClient, instanceId: string): Promise<void> {
  if ((await instanceState(client, instanceId).catch(() => 'missing')) === 'running') await client.terminate(instanceId, 'The chat was deleted.').catch(() => undefined);
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The instances one chat entity manages (its durable client in production). */
export interface ChatInstances {
  start(instanceId: string, plan: TurnPlan): Promise<void>;
  /** Starts the chat's expiry orchestration (durable/chatExpiry.ts). */
  startExpiry(instanceId: string, chatKey: string): Promise<void>;
  /** Purges instances known to have finished, or entities known to be idle; returns those whose purge failed. */
  purge(instanceIds: readonly string[]): Promise<string[]>;
  purgeWhenFinished(instanceId: string, waitMs: number): Promise<boolean>;
  terminate(instanceId: string): Promise<void>;
}

export function durableChatInstances(client: DurableClient): ChatInstances {
  return {
    start: (instanceId, plan) => startOnce(client, TURN_ORCHESTRATION, instanceId, encodeStorable(plan)),
    startExpiry: (instanceId, chatKey) => startOnce(client, CHAT_EXPIRY_ORCHESTRATION, instanceId, chatKey),
    purge: (instanceIds) => purgeTurns(client, instanceIds),
    purgeWhenFinished: (instanceId, waitMs) => purgeTurnWhenFinished(client, instanceId, waitMs),
    terminate: (instanceId) => terminateTurn(client, instanceId),
  };
}
