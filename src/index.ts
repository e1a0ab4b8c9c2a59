/** App-wide setup, loaded first by the Functions host (package.json `main`). */
import { app } from '@azure/functions';
import { getConfig } from './config';
import { authNotEnabledMessage } from './http/principal';

// Streamed responses (SSE from /api/ask) need the library's HTTP stream mode.
app.setup({ enableHttpStream: true });

// Said at startup too, not only in each 503: a per-user app in Azure without App Service
// Authentication in front of it cannot trust any principal header. (Invalid settings are reported
// by the first request that reads them.)
try {
  const { auth } = getConfig();
  if (auth.mode === 'appservice' && auth.inAzure && !auth.platformAuth) console.error(authNotEnabledMessage);
} catch {
  // reported per request
}
