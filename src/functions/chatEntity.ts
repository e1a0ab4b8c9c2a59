/** Wires the chat's durable entities (durable/chatEntities.ts, durable/chatIndex.ts) and its expiry orchestration (durable/chatExpiry.ts) to the runtime. */
import * as df from 'durable-functions';
import { getConfig } from '../config';
import { chatEntity, historyPageEntity, todoListEntity } from '../durable/chatEntities';
import { CHAT_ENTITY_NAME, chatEntityId, HISTORY_PAGE_ENTITY_NAME } from '../durable/chatEntityStore';
import { CHAT_INDEX_ENTITY_NAME, chatIndexEntity } from '../durable/chatIndex';
import { CHAT_EXPIRY_ORCHESTRATION, chatExpiryOrchestrator, PURGE_CHAT_ACTIVITY } from '../durable/chatExpiry';
import { TODO_LIST_ENTITY_NAME } from '../durable/todoEntityStore';
import { durableChatInstances } from '../durable/chatInstances';
import { getTurnStreamStore } from '../storage/turnStreamTable';
import { APPROVAL_TOOL_NAMES, TOOL_NAMES } from '../tools/registry';

const chat = chatEntity({
  instances: (context) => durableChatInstances(df.getClient(context)),
  streams: getTurnStreamStore,
  settings: () => {
    const { chat: settings, chatTtlMs } = getConfig();
    const { historyTokenBudget, historyPageBytes, maxToolRounds, approvalTimeoutMs } = settings;
    return { historyTokenBudget, historyPageBytes, maxToolRounds, allTools: TOOL_NAMES, approvalTools: APPROVAL_TOOL_NAMES, approvalTimeoutMs, chatTtlMs };
  },
  now: () => new Date(),
});

// The chat starts and purges its turns' orchestrations, hence its durable client.
df.app.entity(CHAT_ENTITY_NAME, { handler: chat, extraInputs: [df.input.durableClient()] });
df.app.entity(HISTORY_PAGE_ENTITY_NAME, historyPageEntity);
df.app.entity(TODO_LIST_ENTITY_NAME, todoListEntity({ now: () => new Date() }));
// The index purges expired chats' expiry orchestrations, hence its durable client.
df.app.entity(CHAT_INDEX_ENTITY_NAME, { handler: chatIndexEntity({ instances: (context) => durableChatInstances(df.getClient(context)) }), extraInputs: [df.input.durableClient()] });

df.app.orchestration(CHAT_EXPIRY_ORCHESTRATION, chatExpiryOrchestrator);
// An entity cannot purge its own rows: the expiry orchestration has this do it once the chat deleted itself.
df.app.activity(PURGE_CHAT_ACTIVITY, {
  extraInputs: [df.input.durableClient()],
  handler: async (input: unknown, context) => {
    await df.getClient(context).purgeInstanceHistory(chatEntityId(String(input)).toString());
    return null;
  },
});
