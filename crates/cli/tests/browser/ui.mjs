// Drives the web UI of two daemons (alice shares under --policy ask, bob
// downloads) in headless Chromium, as a person would: every step waits
// for what the page shows, and any console error or uncaught exception
// fails the run. Called by crates/cli/tests/browser_ui.rs with the daemons'
// login links in PEERSHARE_UI_TEST; screenshots go to its artefacts folder.

import { chromium } from 'playwright-core';
import path from 'node:path';

const config = JSON.parse(process.env.PEERSHARE_UI_TEST);
const STEP = 30_000;
const problems = [];
// Failed requests a step causes on purpose (the browser logs them as errors).
const expectedFailures = [/\/api\/v1\/downloads\/\d+\/open$/];

function step(name) {
  console.log(`step: ${name}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(config.artefacts, `${name}.png`), fullPage: true });
}

function watch(page, who) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const url = message.location()?.url ?? '';
    if (expectedFailures.some((pattern) => pattern.test(url))) return;
    problems.push(`${who} console error: ${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => problems.push(`${who} uncaught: ${error.message}`));
}

async function open(browser, who, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  watch(page, who);
  return { context, page };
}

async function nav(page, name) {
  // The link's name may carry a count ("Chats 2"), so it is found by its route.
  await page.locator(`nav a[data-route="${name.toLowerCase()}"]`).click();
  await page.waitForFunction((n) => location.hash.toLowerCase().includes(n.toLowerCase()), name);
}

async function downloadRow(page, name) {
  const row = page.locator('[data-download-id]', { hasText: name }).first();
  await row.waitFor();
  return row;
}

async function stateOf(row) {
  return (await row.locator('[data-field="state"]').first().textContent()).trim().toLowerCase();
}

async function waitState(row, wanted) {
  const deadline = Date.now() + 60_000;
  let seen = '';
  while (Date.now() < deadline) {
    seen = await stateOf(row);
    if (seen.includes(wanted)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`download never reached ${wanted} (last seen ${seen})`);
}

async function acceptRequest(alice, fileName) {
  const request = alice.locator('[data-request-id]', { hasText: fileName }).first();
  await request.waitFor();
  await request.getByRole('button', { name: 'Accept' }).click();
  await request.waitFor({ state: 'detached' });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    step('without the link, every page and API call is refused');
    const stranger = await browser.newContext();
    for (const url of [`${config.bob.base}/`, `${config.bob.base}/api/v1/status`,
      `${config.bob.base}/api/v1/downloads`, `${config.bob.base}/api/v1/events`]) {
      const answer = await stranger.request.get(url, { maxRedirects: 0 });
      check(answer.status() === 401, `${url} answered ${answer.status()} without a session`);
    }
    await stranger.close();

    step('log in through the printed links');
    const a = await open(browser, 'alice');
    const b = await open(browser, 'bob', { colorScheme: 'dark' });
    await a.page.goto(config.alice.link);
    await b.page.goto(config.bob.link);
    for (const page of [a.page, b.page]) {
      check(!page.url().includes('code='), 'the code left the address bar');
      await page.getByRole('link', { name: 'Search', exact: true }).first().waitFor();
    }
    // A marker that a reload would wipe: everything below must update live.
    await b.page.evaluate(() => { window.__noReload = true; });

    step('bob registers');
    await nav(b.page, 'Settings');
    await b.page.getByLabel('User name').fill('bob');
    await b.page.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await b.page.getByRole('button', { name: 'Register' }).click();
    await b.page.getByText(/joined/i).first().waitFor();
    await shot(b.page, 'bob-settings-dark');

    step('bob searches and downloads song.flac; alice accepts from the notification');
    await nav(b.page, 'Search');
    await b.page.getByLabel('Search files').fill('song');
    await b.page.getByRole('button', { name: 'Search', exact: true }).click();
    await b.page.getByText('alice').first().waitFor();
    await shot(b.page, 'bob-search');
    await b.page.getByRole('button', { name: 'Download song.flac' }).click();
    await shot(a.page, 'alice-request-notification');
    await acceptRequest(a.page, 'song.flac');

    step('the progress reaches 100 % live');
    await nav(b.page, 'Transfers');
    const song = await downloadRow(b.page, 'song.flac');
    await waitState(song, 'done');
    const bar = song.locator('progress').first();
    const [value, max] = await bar.evaluate((p) => [p.value, p.max]);
    check(max > 0 && value === max, `progress shows ${value} of ${max}`);
    check(await b.page.evaluate(() => window.__noReload === true), 'the page was reloaded');
    const sources = await song.locator('.sources-box').textContent();
    check(/direct, data connection/.test(sources), `the source's path is shown: ${sources}`);
    await shot(b.page, 'bob-transfers-finished');

    step('open folder opens it, or says where it is when nothing can');
    await song.getByRole('button', { name: 'Open folder' }).click();
    await song.locator('.note.opened, [role="alert"]').filter({ hasText: 'downloads' }).first().waitFor();

    step('pause, resume and cancel a slow download');
    await nav(b.page, 'Search');
    await b.page.getByLabel('Search files').fill('film');
    await b.page.getByRole('button', { name: 'Search', exact: true }).click();
    await b.page.getByRole('button', { name: 'Download film.mkv' }).click();
    await acceptRequest(a.page, 'film.mkv');
    await nav(b.page, 'Transfers');
    const film = await downloadRow(b.page, 'film.mkv');
    await waitState(film, 'active');
    await b.page.waitForFunction(
      () => [...document.querySelectorAll('[data-download-id]')]
        .find((row) => row.textContent.includes('film.mkv'))
        ?.querySelector('progress')?.value > 0,
    );
    await film.getByRole('button', { name: 'Pause' }).click();
    await waitState(film, 'paused');
    await shot(b.page, 'bob-transfers-paused');
    await film.getByRole('button', { name: 'Resume' }).click();
    await waitState(film, 'active');
    await film.getByRole('button', { name: 'Cancel' }).click();
    await waitState(film, 'cancelled');

    step('bob writes to alice; she reads it and answers; both see it live');
    await nav(b.page, 'Chats');
    await b.page.getByLabel('New chat').fill('alice');
    await b.page.getByRole('button', { name: 'Start chat' }).click();
    await b.page.getByLabel('Message', { exact: true }).fill('hello from the browser');
    await b.page.getByRole('button', { name: 'Send' }).click();
    const sent = b.page.locator('[data-message-id]', { hasText: 'hello from the browser' }).first();
    await sent.waitFor();
    await nav(a.page, 'Chats');
    await a.page.locator('li[data-chat="bob"] a').first().click();
    await a.page.locator('[data-message-id]', { hasText: 'hello from the browser' }).first().waitFor();
    await a.page.getByLabel('Message', { exact: true }).fill('hi bob');
    await a.page.getByRole('button', { name: 'Send' }).click();
    await b.page.locator('[data-message-id]', { hasText: 'hi bob' }).first().waitFor();
    await b.page.waitForFunction(() => {
      const mine = [...document.querySelectorAll('[data-message-id]')]
        .find((m) => m.textContent.includes('hello from the browser'));
      return /delivered|read/i.test(mine?.querySelector('[data-field="state"]')?.textContent ?? '');
    });
    await shot(a.page, 'alice-chat');
    await shot(b.page, 'bob-chat-dark');

    step('every page renders on a phone-sized screen');
    await a.page.setViewportSize({ width: 390, height: 844 });
    for (const name of ['Search', 'Transfers', 'Shares', 'People', 'Chats', 'Settings']) {
      await nav(a.page, name);
      await a.page.locator('main').first().waitFor();
      await shot(a.page, `alice-phone-${name.toLowerCase()}`);
      const overflow = await a.page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
      check(overflow <= 1, `${name} overflows a phone screen by ${overflow}px`);
    }

    step('log out of the web UI');
    await nav(b.page, 'Settings');
    await b.page.getByRole('button', { name: 'Log out of the web UI' }).click();
    await b.page.waitForURL(/\/login/);
    const after = await b.context.request.get(`${config.bob.base}/api/v1/status`);
    check(after.status() === 401, `after logging out the API answered ${after.status()}`);
  } finally {
    await browser.close();
  }
  if (problems.length > 0) {
    throw new Error(`the pages reported problems:\n${problems.join('\n')}`);
  }
  console.log('browser run passed');
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exit(1);
});
