/** POST /api/ask {"prompt"} (or ?prompt=): one completion, answered as text/plain, or as SSE for `Accept: text/event-stream`. */
import { app } from '@azure/functions';
import { z } from 'zod';
import { getConfig } from '../config';
import { handleErrors, textResponse } from '../http/respond';
import { completionEventStream, EVENT_STREAM_HEADERS, wantsEventStream } from '../http/sse';
import { jsonBodyReader, textField } from '../http/input';
import { getModelClient, type ModelClient } from '../model';
import { chatOwner, routeAuthLevel } from '../http/principal';

const readAskBody = jsonBodyReader(
  () => getConfig().limits,
  (limits) => z.object({ prompt: textField('prompt', limits.maxMessageChars) }),
  // The seed's binding is prompt="{prompt}": the body's field, or ?prompt=.
  { fromQuery: ['prompt'] },
);

export function askHandler(getModel: () => ModelClient = getModelClient) {
  return handleErrors(async (request) => {
    chatOwner(request, getConfig().auth); // App Service authentication mode: signed-in users only
    const { prompt } = await readAskBody(request);
    const messages = [{ role: 'user' as const, content: prompt }];
    if (wantsEventStream(request.headers.get('accept'))) {
      // Errors before the first byte (throttling, no model...) still get their status codes.
      const chunks = await getModel().stream({ messages });
      return { status: 200, headers: EVENT_STREAM_HEADERS, body: completionEventStream(chunks) };
    }
    const completion = await getModel().complete({ messages });
    return textResponse(200, completion.text);
  });
}

app.http('ask', { route: 'ask', methods: ['POST'], authLevel: routeAuthLevel(), handler: askHandler() });
