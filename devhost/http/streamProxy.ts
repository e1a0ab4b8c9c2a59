/**
 * HTTP streaming (`app.setup({ enableHttpStream: true })`): the library runs its own HTTP server in
 * the app process and reports it as the `HttpUri` capability. Like the Functions host, we start the
 * invocation with trigger metadata only (route params, headers) and forward the raw request to
 * that server with `x-ms-invocation-id`; the library pairs the two, hands the handler a streaming
 * request and writes the handler's response there, which we pipe back chunk by chunk.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { RpcTypedData } from '../worker/coreTypes';
import { flattenHeaders, isForwardableHeader, queryRecord, writeJsonError } from './rpcHttp';

// Idle sockets are dropped before the library's server drops them (Node's keepAliveTimeout, 5 s):
// reusing a socket the server is closing at that moment fails the request with ECONNRESET, which
// reached a client as a 500 once in a bench run.
const agent = new http.Agent({ keepAlive: true, timeout: 4_000 });

export function streamTriggerMetadata(req: IncomingMessage, url: URL, params: Record<string, string>): Record<string, RpcTypedData> {
  const metadata: Record<string, RpcTypedData> = {
    Headers: { json: JSON.stringify(flattenHeaders(req.headers)) },
    Query: { json: JSON.stringify(queryRecord(url)) },
  };
  for (const [name, value] of Object.entries(params)) metadata[name] = { string: value };
  return metadata;
}

export interface StreamForwarding {
  httpUri: string;
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  invocationId: string;
  /** Starts the invocation; resolves with what the handler returned (undefined/null = no response). */
  invoke: () => Promise<{ handlerResult: unknown }>;
  onError: (err: unknown) => void;
}

/** Resolves with the status sent to the client once the response is finished (or aborted). */
export function forwardToStreamProxy(forwarding: StreamForwarding): Promise<number> {
  const { req, res, url, invocationId } = forwarding;
  return new Promise((resolve) => {
    let proxyResponded = false;
    /** Set once we answered the client ourselves; later proxy errors (from aborting it) are expected. */
    let answeredHere = false;
    res.on('close', () => resolve(res.statusCode));
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && name !== 'host' && (isForwardableHeader(name) || name === 'content-length')) headers[name] = value;
    }
    headers['x-ms-invocation-id'] = invocationId;
    headers['x-forwarded-host'] = req.headers.host ?? url.host;
    headers['x-forwarded-proto'] = url.protocol.replace(':', '');
    const proxyRequest = http.request(new URL(`${url.pathname}${url.search}`, forwarding.httpUri), { method: req.method, headers, agent });

    const fail = (err: unknown): void => {
      if (answeredHere) return;
      forwarding.onError(err);
      if (!proxyResponded && !res.headersSent) {
        answeredHere = true;
        proxyRequest.destroy();
        writeJsonError(res, 500, 'internal_error', 'The function failed; see the host log.');
      } else {
        res.destroy();
      }
    };

    proxyRequest.on('response', (proxyResponse) => {
      proxyResponded = true;
      const responseHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(proxyResponse.headers)) {
        if (value !== undefined && name !== 'x-ms-invocation-id' && (isForwardableHeader(name) || name === 'content-length')) responseHeaders[name] = value;
      }
      res.writeHead(proxyResponse.statusCode ?? 200, responseHeaders);
      // Each chunk the handler writes is passed on as it arrives: nothing is buffered here.
      proxyResponse.pipe(res);
      proxyResponse.on('error', () => res.destroy());
    });
    proxyRequest.on('error', (err) => {
      if (answeredHere) return;
      if (!proxyResponded) fail(err);
      else res.destroy();
    });
    req.pipe(proxyRequest);
    // A client that stops sending mid-body (or disconnects before finishing it) would otherwise leave
    // the forwarded request open and the handler waiting for the rest until functionTimeout, holding
    // a socket pair each time. Aborting it ends the handler's body read with an error instead.
    req.on('close', () => {
      if (req.complete) return;
      answeredHere = true;
      proxyRequest.destroy();
    });

    forwarding.invoke().then(
      ({ handlerResult }) => {
        if ((handlerResult === undefined || handlerResult === null) && !proxyResponded) {
          // The handler returned no response, so the library sends none on the proxy: answer like the host.
          answeredHere = true;
          proxyRequest.destroy();
          res.writeHead(204).end();
        }
      },
      (err: unknown) => fail(err),
    );
  });
}
