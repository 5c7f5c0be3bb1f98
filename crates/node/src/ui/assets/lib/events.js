// The live events hub: one EventSource on /api/v1/events for the whole page,
// dispatching each event (JSON with a "type") to the subscribers of that type.
// When the stream drops (the daemon restarted, the page read too slowly and
// got `overflow`, the network blinked) it reconnects and asks the resync
// subscribers to reload their data from REST once. Owns the connection.

import { checkSession, hasEnded } from './api.js';

const subscribers = new Map(); // type → Set<fn>
const resyncSubscribers = new Set();
const stateSubscribers = new Set();

let source = null;
let everOpened = false;
let needResync = false;
let retryTimer = null;
let retryDelay = 1000;
let state = 'connecting';
let firstOpen;
const opened = new Promise((resolve) => { firstOpen = resolve; });

/** Subscribes `fn` to one event type (or several); returns the unsubscribe function. */
export function on(types, fn) {
  const list = Array.isArray(types) ? types : [types];
  for (const type of list) {
    if (!subscribers.has(type)) subscribers.set(type, new Set());
    subscribers.get(type).add(fn);
  }
  return () => {
    for (const type of list) subscribers.get(type)?.delete(fn);
  };
}

/** Subscribes `fn` to "reload from REST": called once after each reconnection. */
export function onResync(fn) {
  resyncSubscribers.add(fn);
  return () => resyncSubscribers.delete(fn);
}

/** Subscribes `fn(state)` to the connection state: connecting, live, reconnecting, closed. */
export function onState(fn) {
  stateSubscribers.add(fn);
  fn(state);
  return () => stateSubscribers.delete(fn);
}

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of stateSubscribers) fn(state);
}

function dispatch(event) {
  const handlers = subscribers.get(event.type);
  if (!handlers) return;
  for (const fn of [...handlers]) {
    try {
      fn(event);
    } catch (error) {
      console.warn(`handling ${event.type} failed: ${error?.message || error}`);
    }
  }
}

function resync() {
  needResync = false;
  for (const fn of [...resyncSubscribers]) {
    try {
      fn();
    } catch (error) {
      console.warn(`reloading after a reconnection failed: ${error?.message || error}`);
    }
  }
}

/** Opens the stream; resolves once it is open (or after `waitMs`, whichever is first). */
export function start(waitMs = 2000) {
  connect();
  return Promise.race([opened, new Promise((resolve) => setTimeout(resolve, waitMs))]);
}

/** Closes the stream for good (the session ended). */
export function stop() {
  clearTimeout(retryTimer);
  source?.close();
  source = null;
  setState('closed');
}

function connect() {
  clearTimeout(retryTimer);
  if (hasEnded()) return;
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => {
    retryDelay = 1000;
    setState('live');
    if (!everOpened) {
      everOpened = true;
      firstOpen();
      if (needResync) resync();
    } else {
      resync();
    }
  });
  source.addEventListener('message', (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (event.type === 'overflow') needResync = true;
    dispatch(event);
  });
  source.addEventListener('error', () => {
    if (hasEnded()) {
      stop();
      return;
    }
    needResync = true;
    setState('reconnecting');
    if (source && source.readyState === EventSource.CLOSED) {
      // The browser gave up (an error answer such as 401 or 503): find out why, then retry.
      source = null;
      checkSession().then((gone) => {
        if (gone) {
          stop();
          return;
        }
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      });
    }
  });
}
