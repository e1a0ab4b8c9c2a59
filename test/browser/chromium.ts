/**
 * Debian's Chromium driven by playwright-core (which brings no browser of its own), and small
 * auto-waiting checks built on Playwright's own waiting (playwright-core has no `expect`).
 *
 *   const browser = await launchChromium();            // fails clearly if /usr/bin/chromium is missing
 *   await waitForTexts(page, '#messages .text', ['Hello', 'echo: Hello']);
 */
import { existsSync } from 'node:fs';
import { chromium, errors, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `The browser tests need Debian's Chromium at ${CHROMIUM_PATH}, and it is not installed. ` +
        'Install it with `apt-get update && apt-get install -y chromium` (.ci/run does this before npm ci).',
    );
  }
  // launch() gives every browser a fresh temporary profile (user-data-dir), removed on close.
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/**
 * The little of the DOM that functions run in the page use. The test tsconfig has no DOM lib (tests
 * run in Node), so in-page code casts `globalThis` to this; the cast is erased before it is sent.
 */
export interface PageGlobals {
  document: {
    querySelector(selector: string): PageElement | null;
    querySelectorAll(selector: string): Iterable<PageElement>;
    createElement(tag: string): PageElement;
    body: PageElement;
    addEventListener(type: 'securitypolicyviolation', listener: (event: { violatedDirective: string; blockedURI: string }) => void, options?: { once?: boolean }): void;
  };
  __pwned?: unknown;
}

export interface PageElement {
  textContent: string | null;
  innerHTML: string;
  firstElementChild: PageElement | null;
  append(...nodes: PageElement[]): void;
  addEventListener(type: 'error', listener: () => void): void;
}

/** A text to match exactly, or a pattern. */
export type TextMatcher = string | RegExp;

type SerializedMatcher = { text: string } | { source: string; flags: string };

function serialize(matcher: TextMatcher): SerializedMatcher {
  return typeof matcher === 'string' ? { text: matcher } : { source: matcher.source, flags: matcher.flags };
}

/**
 * Waits until the elements matching `selector` have exactly these texts, in this order (Playwright's
 * waitForFunction re-checks on every animation frame). On timeout it fails with the texts it saw.
 */
export async function waitForTexts(page: Page, selector: string, expected: TextMatcher[], timeoutMs = 15_000): Promise<void> {
  try {
    await page.waitForFunction(
      ({ selector, matchers }) => {
        const texts = [...(globalThis as unknown as PageGlobals).document.querySelectorAll(selector)].map((element) => element.textContent ?? '');
        return (
          texts.length === matchers.length &&
          texts.every((text, i) => {
            const m = matchers[i]!;
            return 'text' in m ? text === m.text : new RegExp(m.source, m.flags).test(text);
          })
        );
      },
      { selector, matchers: expected.map(serialize) },
      { timeout: timeoutMs },
    );
  } catch (err) {
    if (!(err instanceof errors.TimeoutError)) throw err;
    const actual = await page.locator(selector).allTextContents();
    expect(actual.map((text, i) => (expected[i] instanceof RegExp && expected[i].test(text) ? expected[i] : text)), `texts of ${selector} after ${timeoutMs} ms`).toEqual(expected);
    throw err;
  }
}

/** Waits until the element's text matches; resolves to the text. */
export async function waitForText(page: Page, selector: string, expected: TextMatcher, timeoutMs = 15_000): Promise<string> {
  await waitForTexts(page, selector, [expected], timeoutMs);
  return (await page.locator(selector).textContent()) ?? '';
}
