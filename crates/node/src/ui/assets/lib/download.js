// Starting a download from anywhere in the UI (search results, a user's or
// a peer's files): POST /api/v1/downloads with the body `peershare get`
// sends (the file id, plus holders' full addresses to try first), and a
// "Download" button that says where the download went. Owns no state.

import * as api from './api.js';
import * as status from './status.js';
import { h, alertRegion, busy, announce } from './dom.js';

/** Full addresses (…/p2p/<id>) of `holders` other than this node, loopback ones last. */
export function fullAddrs(holders) {
  const out = [];
  for (const holder of holders || []) {
    if (status.isMe(holder.peer_id)) continue;
    for (const addr of holder.addrs || []) {
      const full = addr.includes('/p2p/') ? addr : `${addr}/p2p/${holder.peer_id}`;
      if (!out.includes(full)) out.push(full);
    }
  }
  const loopback = (a) => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/');
  return [...out.filter((a) => !loopback(a)), ...out.filter(loopback)];
}

/** Asks the daemon to download file `id`; returns the daemon's GetAnswer. */
export function start(id, holders = []) {
  const body = { file: id };
  const sources = fullAddrs(holders);
  if (sources.length) body.sources = sources;
  return api.post('/downloads', body);
}

/** A sentence (and link) saying where a started download went. */
export function describe(answer, name) {
  const folder = status.current()?.downloads_dir;
  switch (answer?.outcome) {
    case 'started':
    case 'attached': {
      const d = answer.download;
      const verb = answer.outcome === 'started' ? 'Downloading' : 'Already downloading';
      return [
        `${verb} ${d?.name || name}${folder ? ` into ${folder}` : ''}: `,
        h('a', { href: '#/transfers' }, 'follow it in Transfers'),
      ];
    }
    case 'already_here':
      return [`Already on this machine: ${answer.path}`];
    default:
      return ['Download asked for.'];
  }
}

/**
 * A "Download" button (accessible name "Download <name>") with a status line
 * beside it that says where the download went, or why it did not start.
 */
export function button(name, id, holders) {
  const note = h('p', { class: 'download-note', hidden: true });
  const alert = alertRegion();
  const btn = h('button', { type: 'button', class: 'primary download', 'aria-label': `Download ${name}` }, 'Download');
  btn.addEventListener('click', async () => {
    note.hidden = true;
    const result = await busy(btn, () => start(id, typeof holders === 'function' ? holders() : holders), alert);
    if (!result || result.error) return;
    note.replaceChildren(...describe(result, name));
    note.hidden = false;
    announce(note.textContent);
  });
  return { el: h('div', { class: 'download-action' }, btn, note, alert.el), button: btn };
}
