/**
 * The Durable Functions HTTP API for entities, as DurableClient calls it through `rpcBaseUrl`:
 *
 *   POST   entities/{name}/{key}?op=<op>   signal (body = JSON input)   → 202 once stored
 *   GET    entities/{name}/{key}           read                          → 200 state JSON | 404
 *   DELETE entities/{name}/{key}           delete, after pending ops     → 202
 *   GET    entities[/{name}]?fetchState=&top=&lastOperationTimeFrom=&lastOperationTimeTo=
 *          list → 200 [{ entityId: {name, key}, lastOperationTime, state? }], more pages via the
 *          x-ms-continuation-token response/request header
 *
 * Orchestration endpoints (instances/, orchestrators/) are OrchestrationWebhooks'.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeError, type Logger } from '../log';
import { readRequestBody, RequestBodyTooLargeError, writeJson, writeJsonError } from '../http/rpcHttp';
import { validateEntityId } from './entityId';
import { UnknownEntityError, type EntityService } from './entityService';
import { PermanentStorageError } from './storageRetry';
import { OperationTooLargeError } from './tableStore';
import { DURABLE_WEBHOOK_PATH } from './clientBinding';
import type { OrchestrationWebhooks } from './orchestrations/orchestrationWebhooks';

const CONTINUATION_HEADER = 'x-ms-continuation-token';
/** Signal bodies above this are refused before reading further (the store's limit is lower anyway). */
const MAX_SIGNAL_BODY_BYTES = 4 * 1024 * 1024;

export class DurableWebhooks {
  constructor(
    private readonly service: EntityService | undefined,
    private readonly orchestrations: OrchestrationWebhooks | undefined,
    private readonly hubName: string,
    private readonly logger: Logger,
  ) {}

  handles(pathname: string): boolean {
    return pathname === DURABLE_WEBHOOK_PATH || pathname.startsWith(`${DURABLE_WEBHOOK_PATH}/`);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const service = this.service;
    if (service === undefined) {
      writeJsonError(res, 501, 'durable_not_enabled', 'This app registers no durable functions or durableClient bindings, so the durable API is off.');
      return;
    }
    const taskHub = url.searchParams.get('taskHub');
    if (taskHub !== null && taskHub.toLowerCase() !== this.hubName.toLowerCase()) {
      writeJsonError(res, 400, 'unknown_task_hub', `The local host serves task hub '${this.hubName}' only.`);
      return;
    }
    let segments: string[];
    try {
      segments = url.pathname
        .slice(DURABLE_WEBHOOK_PATH.length)
        .split('/')
        .filter((segment) => segment !== '')
        .map((segment) => decodeURIComponent(segment));
    } catch {
      writeJsonError(res, 400, 'bad_path', 'The path has invalid percent-encoding.');
      return;
    }
    const [resource, name, ...keyParts] = segments;
    if ((resource === 'instances' || resource === 'orchestrators') && this.orchestrations !== undefined) {
      try {
        await this.orchestrations.handle(req, res, url, segments);
      } catch (err) {
        // Inputs and events too large for a table row (the Functions host moves those to blobs).
        if (err instanceof RequestBodyTooLargeError || err instanceof PermanentStorageError) writeJsonError(res, 413, 'input_too_large', err.message);
        else {
          this.logger.error(`Durable API ${req.method} ${url.pathname} failed: ${describeError(err)}`);
          writeJson(res, 500, { Message: 'Something went wrong while processing your request', ExceptionMessage: describeError(err) });
        }
      }
      return;
    }
    if (resource !== 'entities') {
      writeJsonError(res, 404, 'not_found', `No durable API at ${url.pathname}.`);
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    try {
      if (keyParts.length === 0) {
        if (method !== 'GET') {
          writeJsonError(res, 405, 'method_not_allowed', 'Listing entities takes GET.', { allow: 'GET' });
          return;
        }
        await this.list(req, res, url, service, name);
        return;
      }
      // Keys may contain "/" (DurableClient does not encode them), so the key is the rest of the path.
      const entityName = name ?? '';
      const key = keyParts.join('/');
      const invalid = validateEntityId(entityName, key);
      if (invalid !== undefined) {
        writeJsonError(res, 400, 'invalid_entity_id', invalid);
        return;
      }
      if (method === 'GET') await this.read(res, service, entityName, key);
      else if (method === 'POST') await this.signal(req, res, url, service, entityName, key);
      else if (method === 'DELETE') {
        await service.requestDelete(entityName, key);
        res.writeHead(202).end();
      } else writeJsonError(res, 405, 'method_not_allowed', 'Entities take GET, POST and DELETE.', { allow: 'GET, POST, DELETE' });
    } catch (err) {
      if (err instanceof UnknownEntityError) writeJsonError(res, 404, 'unknown_entity', err.message);
      else if (err instanceof RequestBodyTooLargeError || err instanceof OperationTooLargeError) writeJsonError(res, 413, 'input_too_large', err.message);
      else {
        this.logger.error(`Durable API ${method} ${url.pathname} failed: ${describeError(err)}`);
        writeJsonError(res, 503, 'storage_unavailable', 'The entity store is not reachable; see the host log.');
      }
    }
  }

  private async read(res: ServerResponse, service: EntityService, name: string, key: string): Promise<void> {
    if (!service.hasEntityFunction(name)) {
      res.writeHead(404).end();
      return;
    }
    const value = await service.read(name, key);
    if (!value.exists) {
      res.writeHead(404).end();
      return;
    }
    const body = value.stateJson ?? 'null';
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private async signal(req: IncomingMessage, res: ServerResponse, url: URL, service: EntityService, name: string, key: string): Promise<void> {
    const operation = url.searchParams.get('op') ?? '';
    const body = (await readRequestBody(req, MAX_SIGNAL_BODY_BYTES)).toString('utf8');
    let input: string | undefined;
    if (body.trim() !== '') {
      try {
        JSON.parse(body);
      } catch {
        writeJsonError(res, 400, 'invalid_json', 'The operation input (request body) must be JSON.');
        return;
      }
      input = body;
    }
    await service.signal(name, key, operation, input);
    res.writeHead(202).end();
  }

  private async list(req: IncomingMessage, res: ServerResponse, url: URL, service: EntityService, name: string | undefined): Promise<void> {
    const topText = url.searchParams.get('top');
    const top = topText === null ? 100 : Number(topText);
    if (!Number.isInteger(top) || top < 1 || top > 1000) {
      writeJsonError(res, 400, 'invalid_top', 'top must be an integer from 1 to 1000.');
      return;
    }
    const fetchState = url.searchParams.get('fetchState')?.toLowerCase() === 'true';
    const continuationHeader = req.headers[CONTINUATION_HEADER];
    const continuationToken = typeof continuationHeader === 'string' && continuationHeader !== '' ? continuationHeader : undefined;
    const timeParameter = (parameter: string): string | undefined => {
      const value = url.searchParams.get(parameter);
      if (value === null) return undefined;
      const time = Date.parse(value);
      return Number.isNaN(time) ? undefined : new Date(time).toISOString();
    };
    let page;
    try {
      page = await service.list({
        name,
        top,
        continuationToken,
        fetchState,
        from: timeParameter('lastOperationTimeFrom'),
        to: timeParameter('lastOperationTimeTo'),
      });
    } catch (err) {
      if (continuationToken !== undefined && err instanceof SyntaxError) {
        writeJsonError(res, 400, 'invalid_continuation_token', `The ${CONTINUATION_HEADER} header is not a token this API returned.`);
        return;
      }
      throw err;
    }
    const body = page.entities.map((entity) => ({
      entityId: { key: entity.id.key, name: entity.id.name },
      lastOperationTime: entity.lastOperationTime,
      ...(fetchState ? { state: entity.stateJson === null || entity.stateJson === undefined ? null : (JSON.parse(entity.stateJson) as unknown) } : {}),
    }));
    writeJson(res, 200, body, page.continuationToken === undefined ? {} : { [CONTINUATION_HEADER]: page.continuationToken });
  }
}
