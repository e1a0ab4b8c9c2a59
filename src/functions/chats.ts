/**
 * HTTP starters of the chat entity: PUT/POST/GET/DELETE /api/chats/{chatId}. They validate input,
 * signal the entity, read its state and map the result; the chat rules live in src/chat.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { replyTo, type ChatState } from '../chat/state';
import { toChatView } from '../chat/view';
import { getConfig } from '../config';
import { BadRequestError, ChatNotFoundError, ModelFailedError, ModelTimeoutError } from '../errors';
import { jsonBodyReader, parseChatId, parseTimestampUTC, textField } from '../http/input';
import { handleErrors, jsonResponse, textResponse } from '../http/respond';
import { getModelClient } from '../model';
import { chatEntityId as entityId, readChat, waitForChat } from '../durable/chatStore';

/** How long PUT waits for a new chat to exist before answering 202 instead of 201. */
const CREATE_WAIT_MS = 5_000;
/** How long DELETE waits for the chat to be gone before answering 202 instead of 204. */
const DELETE_WAIT_MS = 5_000;
const MAX_WAIT_SECONDS = 230; // the Functions HTTP front end's own limit
// Reply ids are the message id + '.reply' (chat/state.ts), so client-chosen ids may not end that way:
// a message keyed 'x.reply' would share its id with the reply to 'x'.
const MESSAGE_ID = /^(?!.*\.reply$)[A-Za-z0-9._:-]{1,128}$/;
const MESSAGE_ID_RULE = 'must be 1-128 of A-Z a-z 0-9 . _ : - and not end in ".reply"';

function chatUrl(request: HttpRequest, chatId: string, timestampUTC?: string): string {
  const url = new URL(`/api/chats/${encodeURIComponent(chatId)}`, request.url);
  if (timestampUTC !== undefined) url.searchParams.set('timestampUTC', timestampUTC);
  return url.toString();
}

const readCreateBody = jsonBodyReader(
  () => getConfig().limits,
  (limits) => z.object({ instructions: textField('instructions', limits.maxMessageChars).optional() }),
);
const readPostBody = jsonBodyReader(
  () => getConfig().limits,
  (limits) =>
    z.object({
      message: textField('message', limits.maxMessageChars),
      messageId: z.string().regex(MESSAGE_ID, MESSAGE_ID_RULE).optional(),
    }),
);

async function createChat(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const chatId = parseChatId(request.params.chatId);
  const body = await readCreateBody(request);
  const client = df.getClient(context);
  await client.signalEntity(entityId(chatId), 'create', { instructions: body.instructions });
  const applied = (state: ChatState | undefined) => state !== undefined && (body.instructions === undefined || state.instructions === body.instructions);
  const state = await waitForChat(client, chatId, applied, CREATE_WAIT_MS);
  return jsonResponse(applied(state) ? 201 : 202, { chatId }, { Location: chatUrl(request, chatId) });
}

function parseWaitSeconds(request: HttpRequest, defaultSeconds: number): number {
  const raw = request.query.get('wait');
  if (raw === null) return defaultSeconds;
  const seconds = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(seconds) || seconds < 0 || seconds > MAX_WAIT_SECONDS) {
    throw new BadRequestError('invalid_query', `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}.`);
  }
  return seconds;
}

async function postToChat(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const chatId = parseChatId(request.params.chatId);
  const waitSeconds = parseWaitSeconds(request, getConfig().chat.replyWaitSeconds);
  const body = await readPostBody(request);
  const idempotencyKey = request.headers.get('idempotency-key');
  if (idempotencyKey !== null && !MESSAGE_ID.test(idempotencyKey)) {
    throw new BadRequestError('invalid_field', `The Idempotency-Key header ${MESSAGE_ID_RULE}.`);
  }
  getModelClient(); // 503 now, rather than a stored turn that can only fail
  const client = df.getClient(context);
  // Checked before signalling: a 404 must mean the message was not stored (the entity would store it
  // if a pending create ran first).
  if ((await readChat(client, chatId)) === undefined) throw new ChatNotFoundError(chatId);

  const messageId = idempotencyKey ?? body.messageId ?? `m-${randomUUID()}`;
  const acceptedAt = new Date(Date.now() - 1).toISOString();
  await client.signalEntity(entityId(chatId), 'post', { messageId, message: body.message });
  if (waitSeconds === 0) return pending(request, chatId, messageId, acceptedAt);

  const state = await waitForChat(client, chatId, (s) => s === undefined || replyTo(s, messageId) !== undefined, waitSeconds * 1000);
  if (state === undefined) throw new ChatNotFoundError(chatId);
  const reply = replyTo(state, messageId);
  if (reply === undefined) return pending(request, chatId, messageId, acceptedAt);
  if (reply.status === 'failed') {
    const message = `The reply to message '${messageId}' failed: ${reply.error ?? 'model error'}`;
    throw reply.errorCode === 'model_timeout' ? new ModelTimeoutError(message) : new ModelFailedError(message);
  }
  return textResponse(200, reply.content, { 'X-Message-Id': messageId });
}

function pending(request: HttpRequest, chatId: string, messageId: string, acceptedAt: string): HttpResponseInit {
  return jsonResponse(202, { chatId, messageId, status: 'pending' }, { Location: chatUrl(request, chatId, acceptedAt), 'Retry-After': '1' });
}

async function getChat(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const chatId = parseChatId(request.params.chatId);
  const rawTimestamp = request.query.get('timestampUTC');
  const newerThan = rawTimestamp === null ? undefined : parseTimestampUTC(rawTimestamp);
  const state = await readChat(df.getClient(context), chatId);
  if (state === undefined) throw new ChatNotFoundError(chatId);
  return jsonResponse(200, toChatView(chatId, state, newerThan));
}

async function deleteChat(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const chatId = parseChatId(request.params.chatId);
  const client = df.getClient(context);
  if ((await readChat(client, chatId)) === undefined) throw new ChatNotFoundError(chatId);
  await client.signalEntity(entityId(chatId), 'delete');
  const state = await waitForChat(client, chatId, (s) => s === undefined, DELETE_WAIT_MS);
  return state === undefined ? { status: 204 } : jsonResponse(202, { chatId, status: 'deleting' });
}

const route = 'chats/{chatId}';
const extraInputs = [df.input.durableClient()];
app.http('createChat', { route, methods: ['PUT'], authLevel: 'function', extraInputs, handler: handleErrors(createChat) });
app.http('postToChat', { route, methods: ['POST'], authLevel: 'function', extraInputs, handler: handleErrors(postToChat) });
app.http('getChat', { route, methods: ['GET'], authLevel: 'function', extraInputs, handler: handleErrors(getChat) });
app.http('deleteChat', { route, methods: ['DELETE'], authLevel: 'function', extraInputs, handler: handleErrors(deleteChat) });
