/**
 * Sends orchestrations' entity signals and calls (their EventSent events) to the entity scheduler,
 * each with its origin — the instance's execution and the event id — which the entity uses to
 * recognise a second delivery after a crash. It also tells the entity scheduler which orchestrations
 * may still send a message again (their marks must be kept until then): before recovery, any; after,
 * those with messages not yet recorded as sent.
 */
import { describeError, type Logger } from '../../log';
import type { EntityService } from '../entityService';
import { isTransientStorageError } from '../storageRetry';
import type { EntityResponse } from '../tableStore';
import type { EventSent } from './history';
import type { InstanceHeader } from './instance';

/** The extension's RequestMessage fields the host needs. */
interface RequestMessage {
  op: string;
  signal?: boolean;
  input?: string;
  id: string;
}

/** The origin entities see for an instance's messages: one execution's event ids only ever grow. */
export const senderOf = (header: InstanceHeader): string => `${header.instanceId}|${header.executionId}`;

export class EntityMessenger {
  private readonly unconfirmed = new Set<string>();
  private recovered = false;

  constructor(
    private readonly entities: EntityService | undefined,
    private readonly logger: Logger,
  ) {}

  /** Call results go to `deliverResponse`. */
  connect(deliverResponse: (response: EntityResponse) => Promise<void>): void {
    this.entities?.connectOrchestrations({ deliverResponse, mayRedeliver: (source) => !this.recovered || this.unconfirmed.has(source) });
  }

  /** Every instance that could send again is known (recovery loaded them). */
  markRecovered(): void {
    this.recovered = true;
  }

  /** From the moment messages of `sender` may be in flight until they are recorded as sent. */
  sending(sender: string): void {
    this.unconfirmed.add(sender);
  }

  confirmed(sender: string): void {
    this.unconfirmed.delete(sender);
  }

  /** Delivers one message (`retrying` covers storage hiccups); one storage refuses outright is logged and dropped. */
  async send(header: InstanceHeader, eventId: number, sent: EventSent, retrying: <T>(what: string, action: () => Promise<T>) => Promise<T>): Promise<void> {
    const at = sent.InstanceId.indexOf('@', 1);
    const target = { name: sent.InstanceId.slice(1, at), key: sent.InstanceId.slice(at + 1) };
    const request = JSON.parse(sent.Input) as RequestMessage;
    const entities = this.entities;
    if (entities === undefined) {
      this.logger.error(`Orchestration ${header.instanceId} sent '${request.op}' to ${target.name}@${target.key}, but the app defines no entities; it is dropped.`);
      return;
    }
    const isSignal = request.signal === true;
    try {
      await retrying(`sending '${request.op}' to entity ${target.name}@${target.key}`, () =>
        entities.acceptFromOrchestration(target, {
          kind: isSignal ? 'signal' : 'call',
          name: request.op,
          input: request.input,
          origin: { source: senderOf(header), seq: eventId, index: 0 },
          caller: isSignal ? undefined : { instanceId: header.instanceId, requestId: request.id },
        }),
      );
    } catch (err) {
      // A passing failure surfaces only when the host stops: the message stays unsent and goes after the restart.
      if (isTransientStorageError(err)) throw err;
      this.logger.error(`Orchestration ${header.instanceId}: '${request.op}' for entity ${target.name}@${target.key} cannot be stored (${describeError(err)}); it is dropped.`);
    }
  }
}
