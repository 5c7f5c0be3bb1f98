// The conversations list (GET /api/v1/chats) with unread counts, shared by
// the Chats page and the unread badge in the navigation. Kept current by
// message_received / message_changed / key_changed; reloaded after a
// reconnection. Owns the ChatView list and which chat is open on screen.

import * as api from './api.js';
import * as events from './events.js';

let chats = [];
let loaded = false;
let openChat = null; // the chat shown on screen now (its messages count as read)
const subscribers = new Set();

/** The conversations, most recent first. */
export function list() {
  return chats;
}

export function isLoaded() {
  return loaded;
}

/** Subscribes `fn(list)`; called now and on every change. */
export function subscribe(fn) {
  subscribers.add(fn);
  fn(chats);
  return () => subscribers.delete(fn);
}

function publish() {
  for (const fn of [...subscribers]) fn(chats);
}

/** Reloads the conversations from the daemon. */
export async function refresh() {
  chats = (await api.get('/chats')) || [];
  loaded = true;
  publish();
  return chats;
}

/** Unread messages over every chat. */
export function unreadTotal() {
  return chats.reduce((sum, chat) => sum + (chat.unread || 0), 0);
}

/** Tells the store which chat is on screen (null for none). */
export function setOpen(name) {
  openChat = name;
}

export function openName() {
  return openChat;
}

/** Marks `name` read locally (the daemon did when the chat was fetched). */
export function markRead(name) {
  const chat = chats.find((c) => c.chat === name);
  if (chat && chat.unread) {
    chat.unread = 0;
    publish();
  }
}

/** Sets a chat's held count (after trusting its keys). */
export function setHeld(name, held) {
  const chat = chats.find((c) => c.chat === name);
  if (chat) {
    chat.held = held;
    publish();
  }
}

function upsert(message, received) {
  let chat = chats.find((c) => c.chat === message.chat);
  if (!chat) {
    chat = { chat: message.chat, unread: 0, messages: 0, last: null, held: 0 };
    chats = [chat, ...chats];
  }
  if (received) {
    chat.messages += 1;
    if (!message.outgoing && message.state === 'unread' && openChat !== message.chat) chat.unread += 1;
  }
  const previous = chat.last;
  if (!previous || previous.id === message.id || message.sent_at >= previous.sent_at) {
    if (previous && previous.id === message.id && previous.state === 'held' && message.state !== 'held') {
      chat.held = Math.max(0, (chat.held || 0) - 1);
    }
    chat.last = message;
  }
  if (received && message.outgoing && message.state === 'held') chat.held = (chat.held || 0) + 1;
  // The most recent conversation first.
  chats = [chat, ...chats.filter((c) => c !== chat)].sort((a, b) => (b.last?.sent_at || 0) - (a.last?.sent_at || 0));
  publish();
}

/** Records a message this page just sent (before its events arrive). */
export function sent(message) {
  const chat = chats.find((c) => c.chat === message.chat);
  if (chat?.last?.id === message.id) return;
  upsert(message, true);
}

/** Wires the store to the events hub (once, at start). */
export function wire() {
  events.on('message_received', (event) => upsert(event.message, true));
  events.on('message_changed', (event) => {
    const chat = chats.find((c) => c.chat === event.message.chat);
    if (!chat) {
      upsert(event.message, true);
      return;
    }
    if (chat.last?.id === event.message.id) {
      upsert(event.message, false);
    }
  });
  events.on('key_changed', (event) => {
    const chat = chats.find((c) => c.chat === event.name);
    if (chat) {
      chat.keyChanged = event.new_peers || [];
      publish();
    }
  });
  events.onResync(() => refresh().catch(() => {}));
}
