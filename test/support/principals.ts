/**
 * Acting as a signed-in user, as App Service Authentication ("Easy Auth") tells the app who it is:
 * the `x-ms-client-principal*` headers it sets in front of every request (the app trusts them only
 * where the platform sets them, or locally). The same headers a developer sends by hand (README).
 */
export function principalHeaders(user: string, identityProvider = 'aad'): Record<string, string> {
  const principal = { auth_typ: identityProvider, name_typ: 'name', role_typ: 'roles', claims: [{ typ: 'name', val: user }] };
  return {
    'x-ms-client-principal': Buffer.from(JSON.stringify(principal)).toString('base64'),
    'x-ms-client-principal-id': `id-of-${user}`,
    'x-ms-client-principal-name': user,
    'x-ms-client-principal-idp': identityProvider,
  };
}
