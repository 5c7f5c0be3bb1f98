// The web UI's entry point: opens the session (CSRF token), starts the live
// events stream, fills the header (node id, index state, live state, theme,
// unread badge), mounts the request notifications, and routes #/page hashes
// to the page modules. Owns the router and the "session ended" screen.

import * as api from './lib/api.js';
import * as events from './lib/events.js';
import * as status from './lib/status.js';
import * as requests from './lib/requests.js';
import * as chats from './lib/chats.js';
import * as notifications from './lib/notifications.js';
import * as theme from './lib/theme.js';
import { h, replace } from './lib/dom.js';
import { shortPeer, indexStateLabel } from './lib/format.js';

import { SearchPage } from './pages/search.js';
import { TransfersPage } from './pages/transfers.js';
import { SharesPage } from './pages/shares.js';
import { PeoplePage } from './pages/people.js';
import { ChatsPage } from './pages/chats.js';
import { SettingsPage } from './pages/settings.js';

const PAGES = {
  search: () => new SearchPage(),
  transfers: () => new TransfersPage(),
  shares: () => new SharesPage(),
  people: () => new PeoplePage(),
  chats: () => new ChatsPage(),
  settings: () => new SettingsPage(),
};
const DEFAULT_ROUTE = 'search';
const ENDED_TEXT = 'Your web UI session ended; run `peershare ui` for a fresh login link';

const pages = new Map();
let currentPage = null;
const main = document.getElementById('main');

theme.mount();
api.onSessionEnded(showSessionEnded);
boot();

async function boot() {
  try {
    await api.startSession();
  } catch (error) {
    if (!error?.sessionEnded) showBootError(error);
    return;
  }
  status.wire();
  requests.wire();
  chats.wire();
  // Open the stream before loading anything, so no change falls between a load and the stream.
  await events.start();
  try {
    await status.refresh();
  } catch (error) {
    showBootError(error);
    return;
  }
  mountHeader();
  notifications.mount();
  requests.refresh().catch(() => {});
  chats.refresh().catch(() => {});
  document.getElementById('boot')?.remove();
  window.addEventListener('hashchange', () => route(true));
  route(false);
}

function parseHash() {
  const hash = window.location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = hash.split('/');
  return { name: PAGES[name] ? name : null, rest: rest.map(decodeURIComponent).join('/') };
}

function route(moveFocus) {
  if (api.hasEnded()) return;
  const { name, rest } = parseHash();
  if (!name) {
    window.location.replace(`#/${DEFAULT_ROUTE}`);
    if (!moveFocus) route(false);
    return;
  }
  let page = pages.get(name);
  if (!page) {
    page = PAGES[name]();
    pages.set(name, page);
    main.append(page.el);
  }
  if (currentPage && currentPage !== page) currentPage.hide();
  const changed = currentPage !== page;
  currentPage = page;
  page.show(rest);
  document.title = `${page.title} · peershare`;
  for (const link of document.querySelectorAll('.site-nav a[data-route]')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (moveFocus && changed) page.heading.focus({ preventScroll: false });
}

function mountHeader() {
  const nodeId = document.getElementById('node-id');
  const badge = document.getElementById('index-badge');
  const badgeText = badge.querySelector('[data-field="state"]');
  status.subscribe((s) => {
    replace(nodeId, h('span', { class: 'visually-hidden' }, 'Peer id '), h('code', {}, shortPeer(s.peer_id)));
    nodeId.title = `This node's peer id: ${s.peer_id}`;
    const index = s.index;
    const state = index ? index.state : 'none';
    badge.dataset.state = state;
    badgeText.textContent = index ? indexStateLabel(state, index.user) : 'no index';
    badge.title = index ? `${index.url}: ${index.message}` : 'This daemon uses no index (serverless mode)';
  });

  const live = document.getElementById('live-state');
  const liveText = live.querySelector('[data-field="text"]');
  events.onState((state) => {
    live.dataset.state = state;
    liveText.textContent = {
      connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', closed: 'Offline',
    }[state] || state;
  });

  const unread = document.getElementById('unread-total');
  chats.subscribe(() => {
    const total = chats.unreadTotal();
    unread.hidden = total === 0;
    if (total) replace(unread, String(total), h('span', { class: 'visually-hidden' }, ' unread'));
    else replace(unread);
  });
}

function showSessionEnded() {
  events.stop();
  const banner = document.getElementById('session-ended');
  replace(banner, h('strong', {}, 'Session ended. '), ENDED_TEXT);
  banner.hidden = false;
  document.body.classList.add('ended');
  replace(main, h('section', { class: 'page ended-page', 'aria-labelledby': 'ended-heading' },
    h('h1', { id: 'ended-heading', tabindex: '-1' }, 'Session ended'),
    h('p', {}, ENDED_TEXT),
    h('p', {}, 'On the daemon\'s machine, run ', h('code', {}, 'peershare ui'), ' and open the link it prints.')));
  document.getElementById('notifications')?.replaceChildren();
  currentPage = null;
  document.getElementById('ended-heading')?.focus();
}

function showBootError(error) {
  if (error?.sessionEnded) return;
  replace(main, h('section', { class: 'page' },
    h('h1', {}, 'peershare'),
    h('p', { class: 'alert error', role: 'alert' }, error?.message || 'The daemon did not answer.'),
    h('p', {}, h('button', { type: 'button', onClick: () => window.location.reload() }, 'Try again'))));
}
