/** GET /api/ui: the single-page chat UI (ui/chat.html), read once and served as is. In Azure open it with ?code=<function key>; the page passes the key on. */
import { app } from '@azure/functions';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { handleErrors } from '../http/respond';

// dist/src/functions/ui.js → the project root's ui/ folder, deployed with the app.
const PAGE_PATH = path.join(__dirname, '..', '..', '..', 'ui', 'chat.html');
let page: Promise<string> | undefined;

app.http('ui', {
  route: 'ui',
  methods: ['GET'],
  authLevel: 'function',
  handler: handleErrors(async () => {
    page ??= readFile(PAGE_PATH, 'utf8');
    return {
      status: 200,
      body: await page,
      headers: {
        'Content-Type': 'text/html; charset=utf-8',
        // The page needs no third-party code; a strict policy blocks injected scripts as a second line of defence.
        'Content-Security-Policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
        'X-Content-Type-Options': 'nosniff',
      },
    };
  }),
});
