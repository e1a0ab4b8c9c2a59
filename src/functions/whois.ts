/** GET /api/whois/{name}: the completion of "Who is {name}?" in at most 100 tokens. */
import { app } from '@azure/functions';
import { BadRequestError } from '../errors';
import { handleErrors, textResponse } from '../http/respond';
import { getModelClient, type ModelClient } from '../model';
import { getConfig } from '../config';
import { chatOwner, routeAuthLevel } from '../http/principal';

const MAX_NAME_CHARS = 200;
const WHOIS_MAX_TOKENS = 100;

export function whoisHandler(getModel: () => ModelClient = getModelClient) {
  return handleErrors(async (request) => {
    chatOwner(request, getConfig().auth); // App Service authentication mode: signed-in users only
    const name = (request.params.name ?? '').trim();
    if (name === '' || name.length > MAX_NAME_CHARS) {
      throw new BadRequestError('invalid_field', `name must be 1-${MAX_NAME_CHARS} characters.`);
    }
    const completion = await getModel().complete({ messages: [{ role: 'user', content: `Who is ${name}?` }], maxTokens: WHOIS_MAX_TOKENS });
    return textResponse(200, completion.text);
  });
}

app.http('whois', { route: 'whois/{name}', methods: ['GET'], authLevel: routeAuthLevel(), handler: whoisHandler() });
