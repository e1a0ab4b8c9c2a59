/**
 * The chat as the AI SDK's `useChat` sees it, with `new DefaultChatTransport({ api: '<base>/api/chats' })`:
 * POST /api/chats sends the last message (or the approvals it responds to) and streams the turn as a
 * UI message stream; GET /api/chats/{chatId}/stream resumes the running turn (204 when none runs);
 * GET /api/chats/{chatId}/messages is the chat as UIMessage[]. Thin adapters over the chat service.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { replyId } from '../chat/state';
import { toUIMessages, uiChatAction, uiChatRequestSchema } from '../chat/uiMessages';
import { toUIMessageStream } from '../chat/uiMessageStream';
import { getConfig } from '../config';
import { ApprovalSettledError, BadRequestError, PayloadTooLargeError } from '../errors';
import { jsonBodyReader, MESSAGE_ID, MESSAGE_ID_RULE, parseChatId } from '../http/input';
import { handleErrors, jsonResponse } from '../http/respond';
import { UI_MESSAGE_STREAM_HEADERS, uiMessageEventStream } from '../http/sse';
import type { TurnEvent } from '../chat/turnStream';
import type { ChatService } from '../chat/service';
import { APPROVAL_TOOL_NAMES } from '../tools/registry';
import { routeAuthLevel } from '../http/principal';
import { durableChatService, type ChatServiceFactory } from './chats';

const readRequest = jsonBodyReader(
  () => getConfig().limits,
  () => uiChatRequestSchema,
);

/** The turn of `messageId` as a UI message stream response. */
function uiStreamResponse(service: ChatService, chatId: string, messageId: string, events: AsyncIterable<TurnEvent>, continueAfter?: ReadonlySet<string>): HttpResponseInit {
  const items = toUIMessageStream(events, {
    replyId: replyId(messageId),
    needsApproval: (name) => APPROVAL_TOOL_NAMES.includes(name),
    waitsForAnswer: (round) => service.waitsForAnswer(chatId, messageId, round),
    continueAfter,
  });
  return { status: 200, headers: { ...UI_MESSAGE_STREAM_HEADERS, 'X-Message-Id': messageId }, body: uiMessageEventStream(items) };
}

export function uiChatHandlers(serviceFor: ChatServiceFactory = durableChatService) {
  return {
    async post(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const body = await readRequest(request);
      const chatId = parseChatId(body.id);
      if (body.trigger === 'regenerate-message') {
        throw new BadRequestError('unsupported_trigger', 'Regenerating a reply is not supported: a chat keeps every reply it gave. Send the message again as a new one instead.');
      }
      const action = uiChatAction(body);
      if (typeof action === 'string') throw new BadRequestError('invalid_field', action);
      const service = serviceFor(context, request);

      if (action.kind === 'send') {
        if (!MESSAGE_ID.test(action.messageId)) throw new BadRequestError('invalid_field', `The message id ${MESSAGE_ID_RULE}.`);
        if (action.text.trim() === '') throw new BadRequestError('invalid_field', 'The message has no text.');
        const { maxMessageChars } = getConfig().limits;
        if (action.text.length > maxMessageChars) throw new PayloadTooLargeError(`The message is longer than ${maxMessageChars} characters.`);
        await service.ensureExists(chatId);
        const streamed = await service.streamPost(chatId, action.text, action.messageId, undefined);
        return uiStreamResponse(service, chatId, streamed.messageId, streamed.events);
      }

      // Answers to approvals: the assistant message is the reply of the turn that asked for them.
      const messageId = action.replyId.endsWith('.reply') ? action.replyId.slice(0, -'.reply'.length) : '';
      if (!MESSAGE_ID.test(messageId)) throw new BadRequestError('invalid_field', `The assistant message id '${action.replyId}' is not a reply of this chat ('<messageId>.reply').`);
      for (const answer of action.answers) {
        try {
          await service.answerApproval(chatId, answer.toolCallId, answer.reason === undefined ? { approved: answer.approved } : { approved: answer.approved, reason: answer.reason });
        } catch (err) {
          // A retried request: the same answer was recorded before.
          const same = err instanceof ApprovalSettledError && err.decision?.by === 'user' && err.decision.approved === answer.approved;
          if (!same) throw err;
        }
      }
      return uiStreamResponse(service, chatId, messageId, service.followTurn(chatId, messageId), new Set(action.answers.map((a) => a.toolCallId)));
    },

    async resume(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      const service = serviceFor(context, request);
      const messageId = await service.runningTurn(chatId);
      if (messageId === undefined) return { status: 204 };
      return uiStreamResponse(service, chatId, messageId, service.followTurn(chatId, messageId));
    },

    async messages(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
      const chatId = parseChatId(request.params.chatId);
      return jsonResponse(200, toUIMessages(await serviceFor(context, request).view(chatId, undefined)));
    },
  };
}

const handlers = uiChatHandlers();
const extraInputs = [df.input.durableClient()];
const authLevel = routeAuthLevel();
app.http('uiChatPost', { route: 'chats', methods: ['POST'], authLevel, extraInputs, handler: handleErrors(handlers.post) });
app.http('uiChatResume', { route: 'chats/{chatId}/stream', methods: ['GET'], authLevel, extraInputs, handler: handleErrors(handlers.resume) });
app.http('uiChatMessages', { route: 'chats/{chatId}/messages', methods: ['GET'], authLevel, extraInputs, handler: handleErrors(handlers.messages) });
