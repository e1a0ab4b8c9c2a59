/** App-wide setup, loaded first by the Functions host (package.json `main`). */
import { app } from '@azure/functions';

// Streamed responses (SSE from /api/ask) need the library's HTTP stream mode.
app.setup({ enableHttpStream: true });
