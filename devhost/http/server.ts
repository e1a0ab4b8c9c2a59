/**
 * The host's HTTP front end: the durable API under /runtime/webhooks/durabletask, admin endpoints
 * (/admin/host/status, /admin/devhost/stats), and every httpTrigger function by route. Handler
 * errors are logged in full and answered 500 JSON without details; authLevel is not enforced,
 * as with func start.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { HttpFunction } from '../catalog';
import type { DurableWebhooks } from '../durable/webhooks';
import type { Logger } from '../log';
import type { HostStats } from '../stats';
import type { RpcParameterBinding } from '../worker/coreTypes';
import { FunctionTimeoutError, type FunctionInvoker } from '../worker/invoke';
import { applyCors, type CorsSettings } from './cors';
import type { HttpRouter } from './router';
import {
  extractHttpResponse,
  readRequestBody,
  RequestBodyTooLargeError,
  toRpcHttpRequest,
  writeJson,
  writeJsonError,
  writeRpcHttpResponse,
} from './rpcHttp';
import { forwardToStreamProxy, streamTriggerMetadata } from './streamProxy';

export interface RequestHandlerOptions {
  router: HttpRouter<HttpFunction>;
  invoker: FunctionInvoker;
  webhooks: DurableWebhooks;
  stats: HostStats;
  logger: Logger;
  cors: CorsSettings;
  /** The library's HTTP proxy when the app enabled HTTP streaming. */
  streamUri: string | undefined;
  clientInputs: (bindingNames: string[]) => RpcParameterBinding[];
  describeEntities: () => object;
  logRequests: boolean;
}

/**
 * The path and query as logged. A function key passed as `?code=` (how clients call Azure with
 * authLevel function) is a secret: it is masked, as the Functions host's own log sanitizer does.
 */
export function loggedTarget(url: URL): string {
  if (!url.searchParams.has('code')) return `${url.pathname}${url.search}`;
  const shown = new URLSearchParams(url.searchParams);
  shown.set('code', '[Hidden Credential]');
  return `${url.pathname}?${shown.toString()}`;
}

const STATS_PATH = '/admin/devhost/stats';
const STATUS_PATH = '/admin/host/status';

export function createRequestHandler(options: RequestHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger, stats } = options;

  const logFailure = (fn: HttpFunction, invocationId: string, err: unknown): void => {
    const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
    logger.log('error', fn.name, `Executed '${fn.name}' (Failed, Id=${invocationId}): ${detail}`);
  };

  const invokeBuffered = async (fn: HttpFunction, req: IncomingMessage, res: ServerResponse, url: URL, params: Record<string, string>): Promise<void> => {
    const invocationId = randomUUID();
    const method = (req.method ?? 'GET').toUpperCase();
    let body: Buffer;
    try {
      body = await readRequestBody(req);
    } catch (err) {
      if (err instanceof RequestBodyTooLargeError) writeJsonError(res, 413, 'request_too_large', err.message);
      else res.destroy();
      return;
    }
    try {
      const outcome = await options.invoker.invoke(fn.registered, {
        invocationId,
        inputData: [{ name: fn.triggerBindingName, data: toRpcHttpRequest(req, url, body, params) }, ...options.clientInputs(fn.durableClientBindingNames)],
      });
      const response = extractHttpResponse(outcome.response);
      if (response === undefined) res.writeHead(204).end();
      else writeRpcHttpResponse(res, response, method);
    } catch (err) {
      logFailure(fn, invocationId, err);
      if (res.headersSent) res.destroy();
      else if (err instanceof FunctionTimeoutError) writeJsonError(res, 500, 'function_timeout', `Function '${fn.name}' exceeded functionTimeout.`);
      else writeJsonError(res, 500, 'internal_error', `Function '${fn.name}' failed; see the host log.`);
    }
  };

  const invokeStreaming = async (fn: HttpFunction, req: IncomingMessage, res: ServerResponse, url: URL, params: Record<string, string>, streamUri: string): Promise<void> => {
    const invocationId = randomUUID();
    await forwardToStreamProxy({
      httpUri: streamUri,
      req,
      res,
      url,
      invocationId,
      invoke: () =>
        options.invoker.invoke(fn.registered, {
          invocationId,
          inputData: [{ name: fn.triggerBindingName, data: {} }, ...options.clientInputs(fn.durableClientBindingNames)],
          triggerMetadata: streamTriggerMetadata(req, url, params),
        }),
      onError: (err) => logFailure(fn, invocationId, err),
    });
  };

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const match = options.router.match(method, url.pathname);
    switch (match.kind) {
      case 'matched':
        if (options.streamUri !== undefined) await invokeStreaming(match.route.target, req, res, url, match.params, options.streamUri);
        else await invokeBuffered(match.route.target, req, res, url, match.params);
        return;
      case 'badPath':
        writeJsonError(res, 400, 'bad_path', 'The path has invalid percent-encoding.');
        return;
      case 'notFound':
        if (url.pathname === '/' && (method === 'GET' || method === 'HEAD')) {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('The local host for Azure Functions is running.\n');
          return;
        }
        // As the Functions host: an empty 404. (An app's catch-all route would not help there: it
        // would take the requests of every function whose name sorts after its own.)
        res.writeHead(404, { 'content-length': '0' }).end();
        return;
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.httpRequests++;
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    } catch {
      writeJsonError(res, 400, 'bad_request', 'The request URL or Host header is invalid.');
      return;
    }
    if (options.logRequests) {
      res.on('close', () => {
        const ms = Math.round(performance.now() - started);
        logger.log('information', 'http', `${req.method} ${loggedTarget(url)} -> ${res.statusCode}${res.writableFinished ? '' : ' (aborted)'} (${ms} ms)`);
      });
    }
    if (applyCors(options.cors, req, res)) return;
    if (options.webhooks.handles(url.pathname)) {
      await options.webhooks.handle(req, res, url);
      return;
    }
    if (url.pathname === STATS_PATH) {
      writeJson(res, 200, { ...stats.toJSON(), scheduler: options.describeEntities() });
      return;
    }
    if (url.pathname === STATUS_PATH) {
      writeJson(res, 200, { state: 'Running', host: 'devhost' });
      return;
    }
    await route(req, res, url);
  };

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error(`Request ${req.method} ${req.url} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) writeJsonError(res, 500, 'internal_error', 'The local host failed to process the request; see its log.');
      else res.destroy();
    });
  };
}
