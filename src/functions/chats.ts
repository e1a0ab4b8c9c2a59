/**
 * HTTP starters of the chat entity: PUT/POST/GET/DELETE /api/chats/{chatId}, and the controls of a
 * running turn: POST /api/chats/{chatId}/approvals/{toolCallId} and POST /api/chats/{chatId}/cancel. Thin adapters: they
 * validate input, call the chat service (src/chat/service.ts) over the durable client, and map its
 * outcomes to responses; errors go through http/respond.ts.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ChatService } from '../chat/service';
import { ownedChatStore, ownedStreams } from '../chat/chatKey';
import { chatOwner, routeAuthLevel } from '../http/principal';
import { getConfig } from '../config';
import { nextTurnRecords } from '../storage/streamHints';
import { durableChatStore } from '../durable/chatEntityStore';
import { BadRequestError } from '../errors';
import { jsonBodyReader, MESSAGE_ID, MESSAGE_ID_RULE, parseChatId, parseTimestampUTC, textField } from '../http/input';
import { parseStreamPosition } from '../chat/turnStream';
import { handleErrors, jsonResponse, textResponse } from '../http/respond';
import { EVENT_STREAM_HEADERS, turnEventStream, wantsEventStream } from '../http/sse';
import { getModelClient } from '../model';
import { getTurnStreamStore } from '../storage/turnStreamTable';
import { TOOL_NAMES } from '../tools/registry';

const MAX_REASON_CHARS = 1000;
const TOOL_CALL_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_WAIT_SECONDS = 230; // the Functions HTTP front end's own limit

/**
 * The chat service for one request, over its invocation's durable client, scoped to the caller: in
 * App Service authentication mode to the signed-in user's chats (401 without one), else to the
 * shared namespace of function-key mode.
 */
export type ChatServiceFactory = (context: InvocationContext, request: HttpRequest) => ChatService;

export const durableChatService: ChatServiceFactory = (context, request) => {
  const owner = chatOwner(request, getConfig().auth);
  return new ChatService({
    store: ownedChatStore(durableChatStore(df.getClient(context)), owner),
    changed: nextTurnRecords,
    now: Date.now,
    requireModel: () => void getModelClient(),
    newMessageId: () => `m-${randomUUID()}`,
    streams: ownedStreams(getTurnStreamStore(), owner),
    tools: TOOL_NAMES,
  });
};

function chatUrl(request: HttpRequest, chatId: string, timestampUTC?: string): string {
  const url = new URL(`/api/chats/${encodeURIComponent(chatId)}`, request.url);
  if (timestampUTC !== undefined) url.searchParams.set('timestampUTC', timestampUTC);
  return url.toString();
}

const readCreateBody = jsonBodyReader(
  () => getConfig().limits,
  (limits) =>
    z.object({
      instructions: textField('instructions', limits.maxMessageChars).optional(),
      tools: z.array(z.string().max(64)).max(64).optional(),
    }),
);
const readApprovalBody = jsonBodyReader(
  () => getConfig().limits,
  () =>
    z.object({
      approved: z.boolean(),
      reason: z.string().max(MAX_REASON_CHARS).optional(),
    }),
);
const readCancelBody = jsonBodyReader(
  () => getConfig().limits,
  () => z.object({ messageId: z.string().regex(MESSAGE_ID, MESSAGE_ID_RULE).optional() }),
);
const readPostBody = jsonBodyReader(
  () => getConfig().limits,
  (limits) =>
    z.object({
      message: textField('message', limits.maxMessageChars),
      messageId: z.string().regex(MESSAGE_ID, MESSAGE_ID_RULE).optional(),
    }),
  // The seed's binding is user_message="{message}": the body's field, or ?message=.
  { fromQuery: ['message'] },
);

function parseWaitSeconds(request: HttpRequest, defaultSeconds: number): number {
  const raw = request.query.get('wait');
  if (raw === null) return defaultSeconds;
  const seconds = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(seconds) || seconds < 0 || seconds > MAX_WAIT_SECONDS) {
    throw new BadRequestError('invalid_query', `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}.`);
  }
  return seconds;
}

const MAX_LIST_LIMIT = 100;

function parseLimit(raw: string | null): number {
  if (raw === null) return 20;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) throw new BadRequestError('invalid_query', `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}.`);
  return limit;
}

function parseIdempotencyKey(request: HttpRequest): string | undefined {
  const key = request.headers.get('idempotency-key');
  if (key !== null && !MESSAGE_ID.test(key)) throw new BadRequestError('invalid_field', `The Idempotency-Key header ${MESSAGE_ID_RULE}.`);
  return key ?? undefined;
}

export function chatHandlers(service: ChatServiceFactory = durableChatService) {
  return {
    async create(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const body = await readCreateBody(request);
      const outcome = await service(context, request).create(chatId, { instructions: body.instructions, tools: body.tools });
      return jsonResponse(outcome === 'created' ? 201 : 202, { chatId }, { Location: chatUrl(request, chatId) });
    },

    async post(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const waitSeconds = parseWaitSeconds(request, getConfig().chat.replyWaitSeconds);
      const body = await readPostBody(request);
      const messageId = parseIdempotencyKey(request) ?? body.messageId;
      if (wantsEventStream(request.headers.get('accept'))) {
        const from = parseStreamPosition(request.headers.get('last-event-id'));
        const streamed = await service(context, request).streamPost(chatId, body.message, messageId, from);
        return { status: 200, headers: { ...EVENT_STREAM_HEADERS, 'X-Message-Id': streamed.messageId }, body: turnEventStream(streamed.events) };
      }
      const outcome = await service(context, request).post(chatId, body.message, messageId, waitSeconds * 1000);
      if (outcome.status === 'replied') return textResponse(200, outcome.reply, { 'X-Message-Id': outcome.messageId });
      return jsonResponse(
        202,
        { chatId, messageId: outcome.messageId, status: 'pending' },
        { Location: chatUrl(request, chatId, outcome.acceptedAt), 'Retry-After': '1' },
      );
    },

    async get(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const rawTimestamp = request.query.get('timestampUTC');
      const newerThan = rawTimestamp === null ? undefined : parseTimestampUTC(rawTimestamp);
      return jsonResponse(200, await service(context, request).view(chatId, newerThan));
    },

    async answerApproval(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const toolCallId = request.params.toolCallId ?? '';
      if (!TOOL_CALL_ID.test(toolCallId)) throw new BadRequestError('invalid_tool_call_id', 'The tool call id must be 1-128 of A-Z a-z 0-9 . _ : -.');
      const body = await readApprovalBody(request);
      const outcome = await service(context, request).answerApproval(chatId, toolCallId, { approved: body.approved, reason: body.reason });
      if (outcome.status === 'pending') return jsonResponse(202, { chatId, toolCallId, status: 'pending' }, { Location: chatUrl(request, chatId), 'Retry-After': '1' });
      return jsonResponse(200, { chatId, toolCallId, approved: outcome.approved, ...(body.reason === undefined ? {} : { reason: body.reason }) });
    },

    async cancel(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const body = await readCancelBody(request);
      const outcome = await service(context, request).cancel(chatId, body.messageId);
      const status = outcome.status === 'cancelled' ? 200 : 202;
      return jsonResponse(status, { chatId, messageId: outcome.messageId, status: outcome.status }, status === 202 ? { Location: chatUrl(request, chatId), 'Retry-After': '1' } : {});
    },

    async list(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const limit = parseLimit(request.query.get('limit'));
      const token = request.query.get('continuationToken') ?? undefined;
      return jsonResponse(200, await service(context, request).list(limit, token));
    },

    async delete(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const outcome = await service(context, request).delete(chatId);
      return outcome === 'deleted' ? { status: 204 } : jsonResponse(202, { chatId, status: 'deleting' });
    },
  };
}

const handlers = chatHandlers();
const route = 'chats/{chatId}';
const extraInputs = [df.input.durableClient()];
const authLevel = routeAuthLevel();
app.http('createChat', { route, methods: ['PUT'], authLevel, extraInputs, handler: handleErrors(handlers.create) });
app.http('postToChat', { route, methods: ['POST'], authLevel, extraInputs, handler: handleErrors(handlers.post) });
app.http('getChat', { route, methods: ['GET'], authLevel, extraInputs, handler: handleErrors(handlers.get) });
app.http('listChats', { route: 'chats', methods: ['GET'], authLevel, extraInputs, handler: handleErrors(handlers.list) });
app.http('answerApproval', { route: 'chats/{chatId}/approvals/{toolCallId}', methods: ['POST'], authLevel, extraInputs, handler: handleErrors(handlers.answerApproval) });
app.http('cancelTurn', { route: 'chats/{chatId}/cancel', methods: ['POST'], authLevel, extraInputs, handler: handleErrors(handlers.cancel) });
app.http('deleteChat', { route, methods: ['DELETE'], authLevel, extraInputs, handler: handleErrors(handlers.delete) });
