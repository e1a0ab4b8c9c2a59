/**
 * The orchestration part of the Durable HTTP API, with the status codes and bodies the Durable
 * extension 3.19 answers (recorded from the Functions host), so the durable-functions client behaves
 * the same on both hosts:
 *
 *   POST   orchestrators/{name}[/{id}]          start   → 202 management URLs (Location, Retry-After: 10);
 *                                                         409 {Message} if the id is Pending or Running;
 *                                                         a finished instance is replaced
 *   GET    instances/{id}                       status  → 200 when finished, 202 while Pending/Running
 *                                                         (Location, Retry-After: 5); 404 empty
 *   DELETE instances/{id}                       purge   → 200 {instancesDeleted: 1}; 404 empty;
 *                                                         412 "Only orchestrations in a terminal state..."
 *   POST   instances/{id}/raiseEvent/{event}    event   → 202; 404; 410 when finished; 400 unless JSON
 *   POST   instances/{id}/terminate?reason=     terminate → 202; 404; 410 when finished
 *
 * An entity is an instance `@name@key` there too: its status is reported (Running, with its state
 * as input) and purging it deletes its state. Listing, filtered purges, rewind, restart, suspend and
 * resume answer 501.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readRequestBody, writeJson, writeJsonError } from '../../http/rpcHttp';
import { durableClientBindingData } from '../clientBinding';
import type { EntityId } from '../entityId';
import type { EntityService } from '../entityService';
import type { InstanceHeader } from './instance';
import { InstanceExistsError, type OrchestrationService } from './orchestrationService';

const MAX_INPUT_BODY_BYTES = 4 * 1024 * 1024;

/** The extension formats times with whole seconds ("s" format + Z). */
const apiTime = (iso: string): string => `${iso.slice(0, 19)}Z`;

const parseJson = (text: string | null): unknown => (text === null ? null : (JSON.parse(text) as unknown));

export function statusPayload(header: InstanceHeader): object {
  return {
    name: header.name,
    instanceId: header.instanceId,
    runtimeStatus: header.status,
    input: parseJson(header.inputJson),
    customStatus: parseJson(header.customStatusJson),
    output: parseJson(header.outputJson),
    createdTime: apiTime(header.createdTime),
    lastUpdatedTime: apiTime(header.lastUpdatedTime),
  };
}

/** An entity's status as the extension reports its instance (an entity never finishes). */
function entityStatusPayload(instanceId: string, entity: { exists: boolean; stateJson: string | null; lastOperationTime: string | undefined }): object {
  const time = apiTime(entity.lastOperationTime ?? new Date().toISOString());
  return {
    name: instanceId,
    instanceId,
    runtimeStatus: 'Running',
    input: entity.exists ? { exists: true, state: entity.stateJson, sorter: {} } : { sorter: {} },
    customStatus: entity.exists ? { entityExists: true } : {},
    output: null,
    createdTime: time,
    lastUpdatedTime: time,
  };
}

/** `@name@key` names an entity's instance. */
function entityOf(instanceId: string): EntityId | undefined {
  const at = instanceId.indexOf('@', 1);
  return instanceId.startsWith('@') && at > 1 ? { name: instanceId.slice(1, at), key: instanceId.slice(at + 1) } : undefined;
}

/** Empty JSON-less answers, as the extension sends them (404, 410, 202). */
function writeEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'content-length': '0' }).end();
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export class OrchestrationWebhooks {
  constructor(
    private readonly service: OrchestrationService,
    private readonly entities: EntityService,
    private readonly hubName: string,
    private readonly connectionName: string,
  ) {}

  /** `segments` = the decoded path after /runtime/webhooks/durabletask. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, segments: string[]): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const [resource, ...rest] = segments;
    if (resource === 'orchestrators' && method === 'POST' && rest.length >= 1 && rest.length <= 2) {
      return this.start(req, res, url, rest[0] ?? '', rest[1]);
    }
    if (resource === 'instances' && rest.length === 1) {
      const id = rest[0] ?? '';
      if (method === 'GET') return this.status(res, url, id);
      if (method === 'DELETE') return this.purge(res, id);
    }
    if (resource === 'instances' && rest.length === 3 && rest[1] === 'raiseEvent' && method === 'POST') {
      return this.raiseEvent(req, res, rest[0] ?? '', rest[2] ?? '');
    }
    if (resource === 'instances' && rest.length === 2 && rest[1]?.toLowerCase() === 'terminate' && method === 'POST') {
      const outcome = await this.service.terminate(rest[0] ?? '', url.searchParams.get('reason') ?? '');
      return writeEmpty(res, outcome === 'accepted' ? 202 : outcome === 'notFound' ? 404 : 410);
    }
    writeJsonError(res, 501, 'not_supported', `The local host does not serve ${method} ${url.pathname}; it runs start, status, raiseEvent, terminate and purge of single instances.`);
  }

  private async start(req: IncomingMessage, res: ServerResponse, url: URL, name: string, instanceId: string | undefined): Promise<void> {
    const body = (await readRequestBody(req, MAX_INPUT_BODY_BYTES)).toString('utf8');
    // No body is a null input. (The durable-functions client sends "" for "no input", via axios's JSON encoding.)
    const inputJson = body.trim() === '' ? 'null' : body;
    if (!isJson(inputJson)) {
      writeJson(res, 400, { Message: 'Invalid JSON content' });
      return;
    }
    let id: string;
    try {
      id = await this.service.start(name, instanceId, inputJson);
    } catch (err) {
      if (err instanceof InstanceExistsError) return writeJson(res, 409, { Message: err.message });
      throw err;
    }
    const links = durableClientBindingData(url.origin, this.hubName, this.connectionName).managementUrls;
    const payload = Object.fromEntries(
      Object.entries(links)
        .filter(([key]) => key !== 'rewindPostUri') // the extension 3.19 no longer offers rewind here
        .map(([key, template]) => [key, template.replace('INSTANCEID', encodeURIComponent(id))]),
    );
    writeJson(res, 202, { ...payload, id }, { location: payload['statusQueryGetUri'] ?? '', 'retry-after': '10' });
  }

  private async status(res: ServerResponse, url: URL, instanceId: string): Promise<void> {
    const entityId = entityOf(instanceId);
    const entity = entityId === undefined ? undefined : await this.entities.instance(entityId.name, entityId.key);
    if (entity !== undefined) return writeJson(res, 202, entityStatusPayload(instanceId, entity), { location: url.href, 'retry-after': '5' });
    const header = await this.service.status(instanceId);
    if (header === undefined) return writeEmpty(res, 404);
    const running = header.status === 'Pending' || header.status === 'Running';
    writeJson(res, running ? 202 : 200, statusPayload(header), running ? { location: url.href, 'retry-after': '5' } : {});
  }

  private async purge(res: ServerResponse, instanceId: string): Promise<void> {
    const entityId = entityOf(instanceId);
    if (entityId !== undefined && this.entities.hasEntityFunction(entityId.name)) {
      return (await this.entities.purge(entityId.name, entityId.key)) ? writeJson(res, 200, { instancesDeleted: 1 }) : writeEmpty(res, 404);
    }
    const outcome = await this.service.purge(instanceId);
    if (outcome.kind === 'notFound') return writeEmpty(res, 404);
    if (outcome.kind === 'notFinished') {
      return writeJson(res, 412, `Only orchestrations in a terminal state can be purged, but the orchestration with instance ID ${instanceId} has status ${outcome.status}`);
    }
    writeJson(res, 200, { instancesDeleted: 1 });
  }

  private async raiseEvent(req: IncomingMessage, res: ServerResponse, instanceId: string, eventName: string): Promise<void> {
    const header = await this.service.status(instanceId);
    if (header === undefined) return writeEmpty(res, 404);
    if (header.status !== 'Pending' && header.status !== 'Running') return writeEmpty(res, 410);
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (mediaType !== 'application/json') return writeJson(res, 400, { Message: 'Only application/json request content is supported' });
    const body = (await readRequestBody(req, MAX_INPUT_BODY_BYTES)).toString('utf8');
    if (!isJson(body)) return writeJson(res, 400, { Message: 'Invalid JSON content' });
    const outcome = await this.service.raiseEvent(instanceId, eventName, body);
    writeEmpty(res, outcome === 'accepted' ? 202 : outcome === 'notFound' ? 404 : 410);
  }
}
