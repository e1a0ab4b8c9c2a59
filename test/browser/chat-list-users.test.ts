/**
 * The chat page behind App Service Authentication (AUTH_MODE=appservice), in headless Chromium on the
 * runtime this process drives: the browser carries a signed-in user's principal headers (as Easy
 * Auth puts them on every request), the page needs no function key, and its list shows that user's
 * chats only; New chat starts one of theirs.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { lastUserContent } from '../support/model-server';
import { pollUntil } from '../support/poll';
import { principalHeaders } from '../support/principals';
import { launchChromium, waitForText } from './chromium';

let t: TestApp;
let browser: Browser;
beforeAll(async () => {
  const [app, chromium] = await Promise.allSettled([startTestApp({ AUTH_MODE: 'appservice', CHAT_TTL_DAYS: '0' }), launchChromium()]);
  if (app.status === 'fulfilled') t = app.value;
  if (chromium.status === 'fulfilled') browser = chromium.value;
  for (const outcome of [chromium, app]) if (outcome.status === 'rejected') throw outcome.reason;
  t.model.setDefault({ reply: (r) => `echo: ${lastUserContent(r)}` });
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

async function chatOf(user: string, chatId: string, message: string): Promise<void> {
  const headers = { 'Content-Type': 'application/json', ...principalHeaders(user) };
  expect((await fetch(`${t.host.url}/api/chats/${chatId}`, { method: 'PUT', headers, body: '{}' })).status).toBe(201);
  expect((await fetch(`${t.host.url}/api/chats/${chatId}?wait=60`, { method: 'POST', headers, body: JSON.stringify({ message }) })).status).toBe(200);
}

it('lists the signed-in user’s chats only, without a function key, and starts new ones for them', async () => {
  await chatOf('dana', 'trip', 'Plan my trip to Oslo');
  await chatOf('erik', 'secret', 'Erik’s private plans');
  // The list follows its chats by signals, within moments; the page reads it when it opens.
  await pollUntil('Dana’s list to show her chat', async () => {
    const listed = (await (await fetch(`${t.host.url}/api/chats`, { headers: principalHeaders('dana') })).json()) as { chats: { messageCount: number }[] };
    return listed.chats[0]?.messageCount === 2 ? true : undefined;
  });
  const context = await browser.newContext({ extraHTTPHeaders: principalHeaders('dana') });
  const errors: string[] = [];
  try {
    const page = await context.newPage();
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${t.host.url}/api/ui`); // no ?code=
    await waitForText(page, '#chats li:nth-child(1) button', 'Plan my trip to Oslo');
    expect(await page.locator('#chats li').count()).toBe(1);
    await page.click('#new-chat');
    await waitForText(page, '#status', /^Created chat chat-[0-9a-f]{8}\.$/);
    const created = new URL(page.url()).hash.replace('#chat=', '');
    await waitForText(page, '#chats li:nth-child(1) button', created);
    // It is Dana's: Erik does not see it, and Dana's list has both.
    const erikList = (await (await fetch(`${t.host.url}/api/chats`, { headers: principalHeaders('erik') })).json()) as { chats: { id: string }[] };
    expect(erikList.chats.map((c) => c.id)).toEqual(['secret']);
    const danaList = (await (await fetch(`${t.host.url}/api/chats`, { headers: principalHeaders('dana') })).json()) as { chats: { id: string }[] };
    expect(danaList.chats.map((c) => c.id).sort()).toEqual([created, 'trip'].sort());
  } finally {
    await context.close();
  }
  expect(errors).toEqual([]);
});
