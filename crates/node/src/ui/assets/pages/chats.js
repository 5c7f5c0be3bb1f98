// The Chats page (#/chats and #/chats/<name>): the conversations with unread
// counts, a "New chat" box, and one open conversation (history oldest first,
// each message's delivery state, a "Message" box and "Send"). Live from
// message_received / message_changed; key_changed shows a warning with
// "Trust". Owns the open conversation's messages.

import * as api from '../lib/api.js';
import * as chats from '../lib/chats.js';
import { Page } from '../lib/page.js';
import { h, field, alertRegion, busy, replace, empty, debounce } from '../lib/dom.js';
import { when, date, iso, shortPeer, plural } from '../lib/format.js';

/** Messages loaded when a chat opens. */
const HISTORY = 200;
/** How each state looks: a mark, and whether the word shows beside it. */
const MARKS = {
  held: ['!', true],
  sending: ['…', false],
  stored: ['✓', false],
  delivered: ['✓✓', false],
  read: ['✓✓', false],
  expired: ['×', true],
  failed: ['×', true],
  unread: ['', false],
};

function displayName(name) {
  return name && name.length > 24 ? shortPeer(name) : name;
}

export class ChatsPage extends Page {
  constructor() {
    super('chats', 'Chats');
    this.open = null; // name of the open chat
    this.messages = new Map(); // id → {view, el}
    this.keyWarning = null; // {name, peers}
    this.markReadSoon = debounce(() => this.markRead(), 400);
    this.loadToken = 0;
  }

  build() {
    // The conversations.
    const newChat = field('New chat', { name: 'to', autocomplete: 'off', spellcheck: 'false', placeholder: 'user name or peer id' });
    const start = h('button', { type: 'submit' }, 'Start chat');
    this.newAlert = alertRegion();
    const newForm = h('form', { class: 'inline-form new-chat', novalidate: true }, newChat.wrap, start, this.newAlert.el);
    newForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const name = newChat.input.value.trim();
      if (!name) {
        this.newAlert.show('Type the user name (or peer id) to write to.');
        return;
      }
      newChat.input.value = '';
      this.newAlert.clear();
      window.location.hash = `#/chats/${encodeURIComponent(name)}`;
    });
    this.listAlert = alertRegion();
    this.list = h('ul', { class: 'chat-list', 'aria-label': 'Conversations' });
    this.listEmpty = empty('No conversations yet.');
    const aside = h('section', { class: 'card chat-aside', 'aria-labelledby': 'conversations-heading' },
      h('h2', { id: 'conversations-heading' }, 'Conversations'), newForm, this.listAlert.el, this.listEmpty, this.list);

    // The open conversation.
    this.chatHeading = h('h2', { id: 'chat-heading', tabindex: '-1' }, 'No conversation open');
    this.placeholder = empty('Pick a conversation, or start a new one with a user name.');
    this.warning = h('div', { class: 'warning-box', role: 'alert', hidden: true });
    this.chatAlert = alertRegion();
    this.log = h('ol', { class: 'messages', role: 'log', 'aria-labelledby': 'chat-heading' });
    const text = field('Message', { tag: 'textarea', name: 'text', rows: 3, required: true, maxlength: 65536 }, 'Enter sends; Shift+Enter starts a new line.');
    this.text = text.input;
    this.send = h('button', { type: 'submit', class: 'primary' }, 'Send');
    this.sendAlert = alertRegion();
    this.compose = h('form', { class: 'compose', novalidate: true }, text.wrap, h('div', { class: 'actions' }, this.send), this.sendAlert.el);
    this.compose.addEventListener('submit', (e) => {
      e.preventDefault();
      this.sendMessage();
    });
    this.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.compose.requestSubmit();
      }
    });
    this.conversation = h('section', { class: 'card conversation', 'aria-labelledby': 'chat-heading' },
      this.chatHeading, this.placeholder, this.warning, this.chatAlert.el, this.log, this.compose);

    this.el.append(h('div', { class: 'chat-layout' }, aside, this.conversation));
    this.renderOpen();
  }

  subscribe() {
    this.unsubscribers.push(chats.subscribe((list) => this.renderList(list)));
    this.listen('message_received', (e) => this.incoming(e.message));
    this.listen('message_changed', (e) => this.changed(e.message));
    this.listen('key_changed', (e) => {
      if (e.name === this.open) this.showWarning(e.name, e.new_peers || []);
    });
  }

  hidden() {
    chats.setOpen(null);
    this.markReadSoon.cancel();
  }

  route(rest) {
    const name = rest ? rest.trim() : '';
    if (name === (this.open || '')) return;
    this.open = name || null;
    chats.setOpen(this.open);
    this.messages.clear();
    replace(this.log);
    this.keyWarning = null;
    this.renderOpen();
    if (this.visible && this.loadedOnce) this.loadChat(true);
  }

  async load() {
    this.loadedOnce = true;
    chats.setOpen(this.open);
    try {
      await chats.refresh();
      this.listAlert.clear();
    } catch (error) {
      if (!error.sessionEnded) this.listAlert.show(error);
    }
    await this.loadChat(false);
  }

  renderList(list) {
    this.listEmpty.hidden = list.length > 0 || !chats.isLoaded();
    replace(this.list, list.map((c) => {
      const link = h('a', { href: `#/chats/${encodeURIComponent(c.chat)}`, class: 'chat-link', title: c.chat },
        h('span', { class: 'chat-name' }, displayName(c.chat)),
        c.unread ? h('span', { class: 'count', dataset: { field: 'unread' } }, String(c.unread), h('span', { class: 'visually-hidden' }, ' unread')) : null,
        c.held ? h('span', { class: 'tag warn' }, `${c.held} held`) : null,
        c.last ? h('span', { class: 'preview' }, `${c.last.outgoing ? 'You: ' : ''}${c.last.text.slice(0, 80)}`) : null);
      if (c.chat === this.open) link.setAttribute('aria-current', 'true');
      return h('li', { dataset: { chat: c.chat, unread: String(c.unread || 0) } }, link);
    }));
    const current = list.find((c) => c.chat === this.open);
    if (current && (current.held > 0 || current.keyChanged) && !this.keyWarning) {
      this.showWarning(current.chat, current.keyChanged || []);
    }
  }

  renderOpen() {
    const open = !!this.open;
    this.chatHeading.textContent = open ? `Chat with ${displayName(this.open)}` : 'No conversation open';
    this.chatHeading.title = open ? this.open : '';
    this.placeholder.hidden = open;
    this.log.hidden = !open;
    this.compose.hidden = !open;
    this.warning.hidden = true;
    this.chatAlert.clear();
    this.sendAlert.clear();
    for (const a of this.list?.querySelectorAll('a[aria-current]') || []) a.removeAttribute('aria-current');
    if (open) this.list?.querySelector(`li[data-chat="${CSS.escape(this.open)}"] a`)?.setAttribute('aria-current', 'true');
  }

  async loadChat(focus) {
    if (!this.open) return;
    const name = this.open;
    const token = ++this.loadToken;
    this.log.setAttribute('aria-busy', 'true');
    let history;
    try {
      history = await api.get(`/chats/${api.seg(name)}`, { limit: HISTORY });
    } catch (error) {
      if (token !== this.loadToken) return;
      this.log.removeAttribute('aria-busy');
      if (!error.sessionEnded) this.chatAlert.show(error);
      return;
    }
    if (token !== this.loadToken || name !== this.open) return;
    this.chatAlert.clear();
    this.messages.clear();
    replace(this.log, history.length ? null : h('li', { class: 'empty' }, 'No messages yet. Say hello.'));
    for (const m of history) this.addMessage(m);
    this.log.removeAttribute('aria-busy');
    chats.markRead(name);
    const chat = chats.list().find((c) => c.chat === name);
    if (history.some((m) => m.state === 'held') || chat?.held > 0 || chat?.keyChanged) {
      this.showWarning(name, chat?.keyChanged || []);
    }
    this.scrollToEnd();
    if (focus) this.chatHeading.focus({ preventScroll: true });
  }

  addMessage(m) {
    const existing = this.messages.get(m.id);
    if (existing) {
      existing.view = m;
      this.renderState(existing);
      return;
    }
    this.log.querySelector('li.empty')?.remove();
    const state = h('span', { class: 'msg-state', dataset: { field: 'state' } });
    const note = h('p', { class: 'msg-note', hidden: true });
    const sender = m.outgoing ? 'You' : (m.from_user || shortPeer(m.peer_id) || displayName(m.chat));
    const el = h('li', { class: `msg ${m.outgoing ? 'out' : 'in'}`, dataset: { messageId: m.id } },
      h('p', { class: 'msg-from' }, sender, !m.outgoing && !m.verified
        ? h('span', { class: 'tag warn', title: 'Neither the index nor a pinned key vouches for this sender\'s name' }, 'unverified')
        : null),
      h('p', { class: 'msg-text' }, m.text),
      h('p', { class: 'msg-meta' }, h('time', { datetime: iso(m.sent_at), title: date(m.sent_at) }, when(m.sent_at)), ' ', state),
      note);
    const entry = { view: m, el, state, note };
    this.messages.set(m.id, entry);
    // Keep the history in sending order, even when an older message arrives late.
    const after = [...this.messages.values()].filter((e) => e !== entry && e.el.isConnected && e.view.sent_at > m.sent_at)
      .sort((a, b) => a.view.sent_at - b.view.sent_at)[0];
    if (after) after.el.before(el);
    else this.log.append(el);
    this.renderState(entry);
  }

  renderState(entry) {
    const m = entry.view;
    // Marks tell the sender how far a message got; incoming ones only carry the word.
    const [mark, wordShown] = m.outgoing ? (MARKS[m.state] || ['', true]) : ['', false];
    entry.state.dataset.state = m.state;
    entry.el.dataset.state = m.state;
    entry.state.className = `msg-state state-${m.state}`;
    entry.state.title = m.state;
    replace(entry.state,
      mark ? h('span', { class: 'mark', 'aria-hidden': 'true' }, mark) : null,
      h('span', { class: wordShown ? 'word' : 'visually-hidden' }, m.state));
    // A note explains a held, failed or flagged message; once delivered it no longer applies.
    const showNote = !!m.note && (!m.outgoing || ['held', 'failed', 'expired'].includes(m.state));
    entry.note.textContent = showNote ? m.note : '';
    entry.note.hidden = !showNote;
  }

  incoming(m) {
    if (m.chat !== this.open) return;
    const atEnd = this.nearEnd();
    this.addMessage(m);
    if (atEnd || m.outgoing) this.scrollToEnd();
    if (!m.outgoing && m.state === 'unread') this.markReadSoon();
  }

  changed(m) {
    if (m.chat !== this.open) return;
    if (this.messages.has(m.id)) this.addMessage(m);
    else this.incoming(m);
    if (m.state === 'held') this.showWarning(m.chat, this.keyWarning?.peers || []);
  }

  async markRead() {
    if (!this.open || !this.visible || document.hidden) return;
    const name = this.open;
    try {
      // Fetching the chat marks its unread messages read and tells their senders.
      await api.get(`/chats/${api.seg(name)}`, { limit: 1 });
      chats.markRead(name);
      for (const entry of this.messages.values()) {
        if (!entry.view.outgoing && entry.view.state === 'unread') {
          entry.view = { ...entry.view, state: 'read' };
          this.renderState(entry);
        }
      }
    } catch { /* the next visit marks them */ }
  }

  showWarning(name, peers) {
    this.keyWarning = { name, peers };
    const alert = alertRegion();
    const trust = h('button', { type: 'button', class: 'primary' }, 'Trust');
    trust.addEventListener('click', async () => {
      const result = await busy(trust, () => api.post(`/contacts/${api.seg(name)}/trust`), alert);
      if (!result || result.error) return;
      this.keyWarning = null;
      chats.setHeld(name, 0);
      const chat = chats.list().find((c) => c.chat === name);
      if (chat) delete chat.keyChanged;
      this.warning.hidden = true;
      this.chatAlert.info(`You trust ${displayName(name)}'s peers now; ${plural(result.released ?? 0, 'held message')} sent.`);
      this.text.focus();
      this.loadChat(false);
    });
    replace(this.warning,
      h('p', {}, h('strong', {}, `${displayName(name)}'s peers changed; messages are held until you trust them.`)),
      h('p', {}, 'Check with them in person or another way that they really use a new device, then trust it.'),
      peers.length ? h('p', { class: 'meta' }, 'New peers: ', peers.map((p, i) => [i ? ', ' : '', h('code', { title: p }, shortPeer(p))])) : null,
      h('div', { class: 'actions' }, trust),
      alert.el);
    this.warning.hidden = false;
  }

  async sendMessage() {
    const text = this.text.value;
    if (!text.trim()) {
      this.sendAlert.show('Write something first.');
      this.text.focus();
      return;
    }
    const to = this.open;
    const sent = await busy(this.send, () => api.post('/messages', { to, text }), this.sendAlert);
    if (!sent || sent.error) return;
    this.text.value = '';
    this.text.focus();
    if (sent.message) {
      chats.sent(sent.message);
      if (to === this.open) {
        this.addMessage(sent.message);
        this.scrollToEnd();
        if (sent.message.state === 'held') this.showWarning(to, this.keyWarning?.peers || []);
      }
    }
    if (sent.keys_from === 'dht') {
      this.sendAlert.info('Sent. The recipient\'s keys came from the DHT, where nobody vouches for names.');
    }
  }

  nearEnd() {
    const el = this.log;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  scrollToEnd() {
    this.log.scrollTop = this.log.scrollHeight;
  }
}
