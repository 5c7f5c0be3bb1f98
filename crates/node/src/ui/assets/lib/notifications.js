// The notification area shown on every page: one card per transfer request
// waiting for an answer (data-request-id, "Accept" / "Reject"), removed
// when the request ends, and a dismissible notice when another index runs
// on the LAN (index_nearby). Renders from the requests store; owns the
// #notifications region's contents.

import * as requests from './requests.js';
import * as clock from './clock.js';
import * as events from './events.js';
import { h, alertRegion, busy, announce } from './dom.js';
import { bytes, who, duration } from './format.js';

/** At most this many cards at once; the rest are counted with a link to Transfers. */
const SHOWN = 4;

const cards = new Map(); // id → {el, expiry, deadline}
let region;
let more;

/** Starts rendering into #notifications. */
export function mount() {
  region = document.getElementById('notifications');
  more = h('p', { class: 'toast more', hidden: true });
  region.append(more);
  requests.subscribe(render);
  clock.everySecond(tick);
  events.on('index_nearby', (event) => nearby(event));
}

const noticed = new Set();

/** Another peer on the LAN runs its own index: two separate networks unless this one joins it. */
function nearby({ url, peer_id: peerId }) {
  if (noticed.has(url)) return;
  noticed.add(url);
  const dismiss = h('button', { type: 'button' }, 'Dismiss');
  const el = h('article', { class: 'toast notice', dataset: { notice: 'index-nearby' } },
    h('p', {}, 'Another index runs on your network at ', h('code', {}, url), ` (peer ${who(null, peerId)}). `,
      'You are on a separate network from its users unless you restart with ', h('code', {}, `peershare up --index ${url}`), '.'),
    h('div', { class: 'actions' }, dismiss));
  dismiss.addEventListener('click', () => {
    el.remove();
    document.getElementById('main')?.focus();
  });
  region.prepend(el);
}

function render(list) {
  const shown = list.slice(0, SHOWN);
  const keep = new Set(shown.map((p) => p.request.id));
  for (const [id, card] of cards) {
    if (!keep.has(id)) {
      const hadFocus = card.el.contains(document.activeElement);
      card.el.remove();
      cards.delete(id);
      if (hadFocus) document.getElementById('main')?.focus();
    }
  }
  for (const item of shown) {
    const existing = cards.get(item.request.id);
    if (existing) existing.asker.textContent = who(item.request.user, item.request.peer);
    if (!existing) {
      const card = build(item);
      cards.set(item.request.id, card);
      region.insertBefore(card.el, more);
    }
  }
  const hidden = list.length - shown.length;
  more.hidden = hidden <= 0;
  more.replaceChildren(
    `${hidden} more ${hidden === 1 ? 'request waits' : 'requests wait'}: `,
    h('a', { href: '#/transfers' }, 'see them all in Transfers'),
  );
  region.classList.toggle('has-items', list.length > 0);
}

function build({ request, deadline }) {
  const alert = alertRegion();
  const expiry = h('span', { class: 'expiry' });
  const accept = h('button', { type: 'button', class: 'primary' }, 'Accept');
  const reject = h('button', { type: 'button' }, 'Reject');
  const asker = h('strong', { class: 'asker', title: request.peer }, who(request.user, request.peer));
  const title = h('p', { class: 'toast-title', id: `request-${request.id}-title` },
    asker, ' asks for ', h('strong', { class: 'name' }, request.name));
  const el = h('article', {
    class: 'toast', dataset: { requestId: String(request.id) }, 'aria-labelledby': title.id,
  },
  title,
  h('p', { class: 'meta' }, bytes(request.size), ' · ', expiry),
  h('div', { class: 'actions' }, accept, reject),
  alert.el);
  const act = (yes) => busy([accept, reject], async () => {
    const answer = await requests.answer(request.id, yes);
    if (yes && answer && answer.granted === false) {
      announce(`Accepted ${request.name}, but every upload slot is busy; the peer is told to retry.`);
    } else {
      announce(`${yes ? 'Accepted' : 'Rejected'} the request for ${request.name}.`);
    }
  }, alert);
  accept.addEventListener('click', () => act(true));
  reject.addEventListener('click', () => act(false));
  const card = { el, expiry, deadline, asker };
  updateExpiry(card, Date.now());
  return card;
}

function updateExpiry(card, now) {
  const left = Math.max(0, (card.deadline - now) / 1000);
  card.expiry.textContent = left > 0 ? `answer within ${duration(left)}` : 'timing out…';
}

function tick(now) {
  for (const card of cards.values()) updateExpiry(card, now);
}
