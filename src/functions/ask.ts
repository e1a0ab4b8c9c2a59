/** POST /api/ask {"prompt"}: one completion, answered as text/plain. */
import { app } from '@azure/functions';
import { z } from 'zod';
import { getConfig } from '../config';
import { handleErrors, textResponse } from '../http/respond';
import { readJsonBody, textField } from '../http/input';
import { getModelClient, type ModelClient } from '../model';

export function askHandler(getModel: () => ModelClient = getModelClient) {
  return handleErrors(async (request) => {
    const { limits } = getConfig();
    const { prompt } = await readJsonBody(request, z.object({ prompt: textField('prompt', limits.maxMessageChars) }), limits);
    const completion = await getModel().complete({ messages: [{ role: 'user', content: prompt }] });
    return textResponse(200, completion.text);
  });
}

app.http('ask', { route: 'ask', methods: ['POST'], authLevel: 'function', handler: askHandler() });
