// The node's status (GET /api/v1/status) shared by the header, the settings
// page and anything that needs the node's own peer id or downloads folder.
// Kept current by index_changed, shares_changed and settings_changed events
// and reloaded after a reconnection. Owns the last StatusView seen.

import * as api from './api.js';
import * as events from './events.js';

let status = null;
const subscribers = new Set();

/** The last status seen (null before the first load). */
export function current() {
  return status;
}

/** Subscribes `fn(status)`; called now if a status is known, and on every change. */
export function subscribe(fn) {
  subscribers.add(fn);
  if (status) fn(status);
  return () => subscribers.delete(fn);
}

function publish() {
  for (const fn of [...subscribers]) fn(status);
}

/** Reloads the status from the daemon. */
export async function refresh() {
  status = await api.get('/status');
  publish();
  return status;
}

/** Merges a partial change (e.g. after a POST answered with the new value). */
export function patch(change) {
  if (!status) return;
  status = { ...status, ...change };
  publish();
}

/** Wires the store to the events hub (once, at start). */
export function wire() {
  events.on('index_changed', (event) => patch({ index: event.status }));
  events.on('shares_changed', (event) => patch({ shared_files: event.shared_files }));
  events.on('settings_changed', (event) => {
    const limits = event.limits || {};
    patch({
      policy: event.policy ?? status?.policy,
      max_uploads: limits.max_uploads ?? status?.max_uploads,
      max_upload_peers: limits.max_upload_peers ?? status?.max_upload_peers,
    });
  });
  events.onResync(() => refresh().catch(() => {}));
}

/** True when `peerId` is this node. */
export function isMe(peerId) {
  return !!status && status.peer_id === peerId;
}
