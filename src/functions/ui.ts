/**
 * GET /api/ui: the single-page chat UI (ui/chat.html), read once and served as is. In Azure open it
 * with ?code=<function key>; the page passes the key on as x-functions-key.
 */
import { app } from '@azure/functions';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { handleErrors } from '../http/respond';
import { routeAuthLevel } from '../http/principal';

// dist/src/functions/ui.js → the project root's ui/ folder, deployed with the app.
const PAGE_PATH = path.join(__dirname, '..', '..', '..', 'ui', 'chat.html');

interface Page {
  html: string;
  contentSecurityPolicy: string;
}

let page: Promise<Page> | undefined;

/**
 * The page's policy allows exactly its own inline <script> and <style> blocks, by hash. Unlike
 * 'unsafe-inline', that blocks inline event handlers (`<img onerror=...>`), so markup injected
 * into the page could not run code even if the page ever rendered model output as HTML.
 */
export function contentSecurityPolicy(html: string): string {
  const hashes = (tag: 'script' | 'style') =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      // Browsers hash the element's text after the HTML parser has turned CRLF/CR into LF, so a
      // checkout with Windows line endings must hash the same.
      .map((match) => `'sha256-${createHash('sha256').update((match[1] ?? '').replace(/\r\n?/g, '\n'), 'utf8').digest('base64')}'`)
      .join(' ');
  return [
    "default-src 'none'",
    `script-src ${hashes('script')}`,
    `style-src ${hashes('style')}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

async function loadPage(): Promise<Page> {
  const html = await readFile(PAGE_PATH, 'utf8');
  return { html, contentSecurityPolicy: contentSecurityPolicy(html) };
}

app.http('ui', {
  route: 'ui',
  methods: ['GET'],
  authLevel: routeAuthLevel(),
  handler: handleErrors(async () => {
    // A failed read is not cached, so a later request can succeed.
    page ??= loadPage().catch((err: unknown) => {
      page = undefined;
      throw err;
    });
    const { html, contentSecurityPolicy: policy } = await page;
    return {
      status: 200,
      body: html,
      headers: {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': policy,
        'X-Content-Type-Options': 'nosniff',
        // The address may hold ?code=<function key>: never send it on as a referrer.
        'Referrer-Policy': 'no-referrer',
        'Cache-Control': 'no-cache',
      },
    };
  }),
});
