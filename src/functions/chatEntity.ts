/** Wires the chat's durable entities (durable/chatEntities.ts) to the runtime: their ports and registrations. */
import * as df from 'durable-functions';
import { getConfig } from '../config';
import { chatEntity, historyPageEntity, todoListEntity } from '../durable/chatEntities';
import { CHAT_ENTITY_NAME, HISTORY_PAGE_ENTITY_NAME } from '../durable/chatEntityStore';
import { TODO_LIST_ENTITY_NAME } from '../durable/todoEntityStore';
import { durableChatInstances } from '../durable/chatInstances';
import { getTurnStreamStore } from '../storage/turnStreamTable';
import { APPROVAL_TOOL_NAMES, TOOL_NAMES } from '../tools/registry';

const chat = chatEntity({
  instances: (context) => durableChatInstances(df.getClient(context)),
  streams: getTurnStreamStore,
  settings: () => {
    const { historyTokenBudget, historyPageBytes, maxToolRounds, approvalTimeoutMs } = getConfig().chat;
    return { historyTokenBudget, historyPageBytes, maxToolRounds, allTools: TOOL_NAMES, approvalTools: APPROVAL_TOOL_NAMES, approvalTimeoutMs };
  },
  now: () => new Date(),
});

// The chat starts and purges its turns' orchestrations, hence its durable client.
df.app.entity(CHAT_ENTITY_NAME, { handler: chat, extraInputs: [df.input.durableClient()] });
df.app.entity(HISTORY_PAGE_ENTITY_NAME, historyPageEntity);
df.app.entity(TODO_LIST_ENTITY_NAME, todoListEntity({ now: () => new Date() }));
