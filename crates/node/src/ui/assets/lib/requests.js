// Transfer requests waiting for the person's answer (policy ask/contacts):
// loaded from GET /api/v1/requests, kept current by request_waiting and
// request_ended, answered with accept/reject. Both the notifications and
// the Transfers page render from this one store. Owns the pending list.

import * as api from './api.js';
import * as events from './events.js';
import { debounce } from './dom.js';

const pending = new Map(); // id → {request, deadline}
const subscribers = new Set();

/** Every waiting request, oldest first, each with `deadline` (ms) for its timeout. */
export function list() {
  return [...pending.values()].sort((a, b) => a.request.id - b.request.id);
}

/** Subscribes `fn(list)`; called now and on every change. */
export function subscribe(fn) {
  subscribers.add(fn);
  fn(list());
  return () => subscribers.delete(fn);
}

function publish() {
  const now = list();
  for (const fn of [...subscribers]) fn(now);
}

function add(request) {
  pending.set(request.id, { request, deadline: Date.now() + (request.expires_in ?? 0) * 1000 });
}

/** Reloads the list from the daemon. */
export async function refresh() {
  const requests = await api.get('/requests');
  pending.clear();
  for (const request of requests || []) add(request);
  publish();
}

const fillNames = debounce(() => {
  api.get('/requests').then((requests) => {
    let changed = false;
    for (const request of requests || []) {
      const item = pending.get(request.id);
      if (item && request.user && item.request.user !== request.user) {
        item.request = { ...item.request, user: request.user };
        changed = true;
      }
    }
    if (changed) publish();
  }).catch(() => {});
}, 200);

/** Accepts (true) or rejects (false) request `id`; resolves with the daemon's answer. */
export async function answer(id, accept) {
  try {
    const result = await api.post(`/requests/${id}/${accept ? 'accept' : 'reject'}`);
    pending.delete(id);
    publish();
    return result;
  } catch (error) {
    if (error.status === 404) {
      // Answered elsewhere or timed out: it is gone either way.
      pending.delete(id);
      publish();
    }
    throw error;
  }
}

/** Wires the store to the events hub (once, at start). */
export function wire() {
  events.on('request_waiting', (event) => {
    add(event.request);
    publish();
    // Events carry no user names; the list names the askers the index knows.
    if (!event.request.user) fillNames();
  });
  events.on('request_ended', (event) => {
    if (pending.delete(event.id)) publish();
  });
  events.onResync(() => refresh().catch(() => {}));
}
