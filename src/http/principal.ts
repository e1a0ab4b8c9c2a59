/**
 * Who is asking, in App Service authentication mode: the signed-in user App Service Authentication
 * ("Easy Auth") puts in the `x-ms-client-principal*` headers, which @azure/functions parses as
 * `request.user`. Those headers are trusted only where the platform sets them: in Azure the app
 * requires WEBSITE_AUTH_ENABLED; locally (func start, the local host) a developer or a test sets them
 * by hand to act as a user. The owner key is a hash of the identity provider and the user id, so
 * storage keys carry no personal data.
 */
import type { HttpRequest } from '@azure/functions';
import { createHash } from 'node:crypto';
import { getConfig, type AppConfig } from '../config';
import { AuthNotEnabledError, UnauthenticatedError } from '../errors';

export const authNotEnabledMessage =
  'AUTH_MODE is appservice but App Service Authentication is not enabled for this app (WEBSITE_AUTH_ENABLED), so no signed-in user can be trusted and every chat route answers 503. Turn it on (azd: set AUTH_CLIENT_ID) or set AUTH_MODE=keys.';

/** The owner of the caller's chats: undefined in function-key mode (one shared namespace). */
export function chatOwner(request: HttpRequest, auth: AppConfig['auth']): string | undefined {
  if (auth.mode === 'keys') return undefined;
  if (auth.inAzure && !auth.platformAuth) {
    throw new AuthNotEnabledError(authNotEnabledMessage);
  }
  let user: HttpRequest['user'];
  try {
    user = request.user;
  } catch {
    user = null; // an x-ms-client-principal without its -id/-name/-idp companions
  }
  if (user === null || typeof user.id !== 'string' || user.id === '') {
    throw new UnauthenticatedError('Sign in first: this app keeps chats per signed-in user (App Service Authentication), and the request carries none.');
  }
  return `u${createHash('sha256').update(`${user.identityProvider}|${user.id}`).digest('hex').slice(0, 32)}`;
}

/**
 * The auth level of the app's routes, fixed when they are registered: function keys, or none behind
 * App Service Authentication (which refuses requests without a signed-in user before they reach the
 * app). Settings that do not parse leave keys on; the first request reports them.
 */
export function routeAuthLevel(): 'function' | 'anonymous' {
  try {
    return getConfig().auth.mode === 'appservice' ? 'anonymous' : 'function';
  } catch {
    return 'function';
  }
}
