// The People page (#/people): users online on the index (pick one to browse
// their files, each with a Download button), known peers and how each was
// found (live from peer_connection), and contacts with presence
// (contact_presence) with add / remove / block / unblock. Owns the lists
// shown and the listing being browsed.

import * as api from '../lib/api.js';
import * as status from '../lib/status.js';
import * as download from '../lib/download.js';
import * as clock from '../lib/clock.js';
import { Page, section } from '../lib/page.js';
import { pager } from '../lib/pager.js';
import { h, field, alertRegion, busy, replace, empty, debounce, newId, announce } from '../lib/dom.js';
import { bytes, shortPeer, shortId, relative, date, plural, connectionPath } from '../lib/format.js';

const PAGE = 50;
const FOUND_BY = { index: 'index', mdns: 'LAN (mDNS)', dht: 'DHT', bootstrap: 'bootstrap', connection: 'connection' };

export class PeoplePage extends Page {
  constructor() {
    super('people', 'People');
    this.users = [];
    this.peers = new Map(); // peer id → KnownPeer
    this.contacts = [];
    this.reloadPeersSoon = debounce(() => this.loadPeers(), 500);
  }

  build() {
    // Users.
    this.usersAlert = alertRegion();
    this.usersList = h('ul', { class: 'users', 'aria-label': 'Users online' });
    this.usersEmpty = empty('Nobody else is online on the index.');
    const refreshUsers = h('button', { type: 'button' }, 'Refresh users');
    refreshUsers.addEventListener('click', () => busy(refreshUsers, () => this.loadUsers()));

    // Browsing.
    this.browseHeading = h('h2', { id: 'browse-heading', tabindex: '-1' }, 'Files');
    this.browseInfo = h('p', { class: 'meta', 'aria-live': 'polite' });
    this.browseAlert = alertRegion();
    this.browseList = h('ul', { class: 'browse-files', 'aria-labelledby': 'browse-heading' });
    this.browsePager = pager('Browsed files pages', PAGE, (items) => this.renderBrowsePage(items));
    const filter = field('Filter these files', { type: 'search', autocomplete: 'off' });
    this.browseFilter = filter.input;
    this.browseFilter.addEventListener('input', debounce(() => this.filterBrowse(), 150));
    const closeBrowse = h('button', { type: 'button' }, 'Close list');
    closeBrowse.addEventListener('click', () => {
      this.browseBox.hidden = true;
      this.usersList.querySelector('button')?.focus();
    });
    this.browseBox = h('section', { class: 'card browse', 'aria-labelledby': 'browse-heading', hidden: true },
      h('div', { class: 'card-head' }, this.browseHeading, closeBrowse),
      this.browseInfo, filter.wrap, this.browseAlert.el, this.browseList, this.browsePager.el);

    // Peers.
    this.peersAlert = alertRegion();
    this.peersBody = h('tbody');
    this.peersTable = h('table', { class: 'stack peers' },
      h('caption', { class: 'visually-hidden' }, 'Known peers'),
      h('thead', {}, h('tr', {}, ['Peer', 'Found by', 'Connected', 'Path', 'Last seen', ''].map((t) => h('th', { scope: 'col' }, t)))),
      this.peersBody);
    this.peersEmpty = empty('No other peer is known yet.');

    // Contacts.
    this.contactsAlert = alertRegion();
    this.contactsList = h('ul', { class: 'contacts', 'aria-label': 'Contacts' });
    this.contactsEmpty = empty('No contacts yet.');
    const name = field('Contact name', { name: 'contact', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'user name or peer id' });
    const add = h('button', { type: 'submit', class: 'primary', value: 'add' }, 'Add contact');
    const block = h('button', { type: 'submit', value: 'block' }, 'Block');
    const form = h('form', { class: 'inline-form', novalidate: true }, name.wrap, add, block);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const who = name.input.value.trim();
      if (!who) {
        this.contactsAlert.show('Type a user name or a peer id.');
        return;
      }
      const blocking = e.submitter?.value === 'block';
      const result = await busy([add, block], () => (blocking
        ? api.post(`/contacts/${api.seg(who)}/block`, { blocked: true })
        : api.post('/contacts', { name: who })), this.contactsAlert);
      if (result?.error) return;
      name.input.value = '';
      this.contactsAlert.info(blocking ? `Blocked ${who}.` : `Added ${who} to your contacts.`);
      await this.loadContacts();
    });

    this.el.append(
      section('Users online', h('div', { class: 'toolbar' }, refreshUsers), this.usersAlert.el, this.usersEmpty, this.usersList),
      this.browseBox,
      section('Contacts', this.contactsAlert.el, this.contactsEmpty, this.contactsList, form),
      section('Known peers', this.peersAlert.el, this.peersEmpty, h('div', { class: 'table-wrap' }, this.peersTable)),
    );
  }

  subscribe() {
    this.listen('peer_connection', (e) => this.peerConnection(e));
    this.listen('contact_presence', (e) => this.presence(e));
    this.listen('index_changed', () => this.loadUsers().catch(() => {}));
    this.unsubscribers.push(clock.everySecond((now) => this.tick(now)));
  }

  hidden() {
    this.reloadPeersSoon.cancel();
  }

  async load() {
    await Promise.allSettled([this.loadUsers(), this.loadPeers(), this.loadContacts()]);
  }

  // ---- users ----

  async loadUsers() {
    if (!status.current()?.index) {
      this.usersAlert.info('This daemon uses no index, so there is no list of users. Browse known peers below, or a user by name through the DHT:');
      this.users = [];
      this.renderUsers();
      this.renderNameBrowse();
      return;
    }
    try {
      const answer = await api.get('/index/users');
      this.usersAlert.clear();
      this.users = answer?.users || [];
    } catch (error) {
      if (error.sessionEnded) return;
      this.usersAlert.show(error);
      this.users = [];
    }
    this.renderUsers();
  }

  renderNameBrowse() {
    if (this.nameForm) return;
    const name = field('Browse a user by name', { autocomplete: 'off', spellcheck: 'false' });
    const go = h('button', { type: 'submit' }, 'Browse');
    this.nameForm = h('form', { class: 'inline-form', novalidate: true }, name.wrap, go);
    this.nameForm.addEventListener('submit', (e) => {
      e.preventDefault();
      if (name.input.value.trim()) this.browseUser(name.input.value.trim());
    });
    this.usersAlert.el.after(this.nameForm);
  }

  renderUsers() {
    const me = status.current()?.index?.user;
    const others = this.users.filter((u) => u.name !== me);
    this.usersEmpty.hidden = others.length > 0 || !status.current()?.index;
    replace(this.usersList, others.map((user) => {
      const peersId = newId('user-peers');
      const browse = h('button', { type: 'button', class: 'link-button user-name', 'aria-describedby': peersId }, user.name);
      browse.addEventListener('click', () => this.browseUser(user.name));
      const addContact = h('button', { type: 'button', 'aria-label': `Add ${user.name} to contacts` }, 'Add contact');
      addContact.addEventListener('click', async () => {
        const result = await busy(addContact, () => api.post('/contacts', { name: user.name }), this.usersAlert);
        if (result?.error) return;
        announce(`Added ${user.name} to your contacts.`);
        this.loadContacts();
      });
      return h('li', { class: 'user', dataset: { user: user.name } },
        h('span', { class: `presence ${user.online ? 'online' : 'offline'}` }, user.online ? 'online' : 'offline'),
        browse,
        h('span', { class: 'meta', id: peersId }, plural(user.peers?.length || 0, 'peer')),
        h('span', { class: 'actions' },
          h('a', { href: `#/chats/${encodeURIComponent(user.name)}`, class: 'button', 'aria-label': `Open chat with ${user.name}` }, 'Chat'),
          addContact));
    }));
  }

  async browseUser(name) {
    this.openBrowse(`Files of ${name}`);
    const user = this.users.find((u) => u.name === name);
    let answer;
    try {
      answer = await api.get(`/users/${api.seg(name)}/files`);
    } catch (error) {
      if (!error.sessionEnded) this.browseAlert.show(error);
      this.browseInfo.textContent = '';
      this.browseList.removeAttribute('aria-busy');
      return;
    }
    const notes = [`${plural(answer.files.length, 'file')}`];
    if (answer.origin === 'dht') {
      notes.push('listed through the DHT, where nobody vouches for names');
      if (answer.index_error) notes.push(`the index was not asked: ${answer.index_error}`);
      const claimants = (answer.claimed_by || []).map((c) => shortPeer(c.peer_id));
      if (claimants.length) notes.push(`claimed by ${claimants.join(', ')}`);
    } else {
      notes.push('listed by the index');
    }
    this.browseInfo.textContent = `${notes.join('; ')}.`;
    const holdersOf = (peerId) => {
      const peer = user?.peers?.find((p) => p.peer_id === peerId);
      return peer ? [{ peer_id: peer.peer_id, addrs: peer.addrs || [] }] : [];
    };
    this.browseItems = answer.files.map((f) => ({ ...f, holders: holdersOf(f.peer_id) }));
    this.browseList.removeAttribute('aria-busy');
    this.filterBrowse();
  }

  async browsePeer(peerId) {
    this.openBrowse(`Files of peer ${shortPeer(peerId)}`);
    let answer;
    try {
      answer = await api.get('/browse', { peer: peerId });
    } catch (error) {
      if (!error.sessionEnded) this.browseAlert.show(error);
      this.browseInfo.textContent = '';
      this.browseList.removeAttribute('aria-busy');
      return;
    }
    const peer = this.peers.get(peerId);
    const holders = [{ peer_id: peerId, addrs: peer?.addrs || [] }];
    this.browseInfo.textContent = `${plural(answer.total ?? answer.files.length, 'file')}${answer.truncated ? ' (the listing was cut short)' : ''}.`;
    this.browseItems = answer.files.map((f) => ({ ...f, peer_id: peerId, online: true, holders }));
    this.browseList.removeAttribute('aria-busy');
    this.filterBrowse();
  }

  filterBrowse() {
    const words = this.browseFilter.value.trim().toLowerCase();
    const items = this.browseItems || [];
    this.browsePager.set(words ? items.filter((f) => f.name.toLowerCase().includes(words)) : items);
  }

  openBrowse(title) {
    this.browseHeading.textContent = title;
    this.browseBox.hidden = false;
    this.browseAlert.clear();
    this.browseInfo.textContent = 'Asking…';
    this.browseItems = null;
    this.browseFilter.value = '';
    this.browseList.setAttribute('aria-busy', 'true');
    replace(this.browseList);
    this.browsePager.set([]);
    this.browseHeading.focus();
  }

  renderBrowsePage(items) {
    if (!items.length && this.browseItems) {
      replace(this.browseList, h('li', { class: 'empty' }, this.browseItems.length ? 'No file matches the filter.' : 'No files shared.'));
      return;
    }
    replace(this.browseList, items.map((file) => h('li', { class: 'browse-file', dataset: { fileId: file.id } },
      h('div', { class: 'file-info' },
        h('span', { class: 'file-name' }, file.name),
        h('span', { class: 'meta' }, bytes(file.size), ' · ', h('code', { title: file.id }, shortId(file.id)),
          file.peer_id ? [' · ', h('code', { title: file.peer_id }, shortPeer(file.peer_id))] : null,
          file.online === false ? ' · offline' : null)),
      download.button(file.name, file.id, file.holders).el)));
  }

  // ---- peers ----

  async loadPeers() {
    try {
      const answer = await api.get('/peers');
      this.peersAlert.clear();
      this.peers = new Map((answer?.peers || []).map((p) => [p.peer_id, p]));
    } catch (error) {
      if (!error.sessionEnded) this.peersAlert.show(error);
      return;
    }
    this.renderPeers();
  }

  renderPeers() {
    const peers = [...this.peers.values()].sort((a, b) => (b.connected - a.connected) || (b.last_seen_ms - a.last_seen_ms));
    this.peersEmpty.hidden = peers.length > 0;
    this.peersTable.hidden = peers.length === 0;
    replace(this.peersBody, peers.map((p) => {
      const browse = h('button', { type: 'button', 'aria-label': `Browse peer ${shortPeer(p.peer_id)}` }, 'Browse');
      browse.addEventListener('click', () => this.browsePeer(p.peer_id));
      return h('tr', { dataset: { peerId: p.peer_id } },
        h('td', { 'data-label': 'Peer' }, h('code', { title: `${p.peer_id}\n${(p.addrs || []).join('\n')}` }, shortPeer(p.peer_id))),
        h('td', { 'data-label': 'Found by' }, [...(p.found_by || [])].map((f) => h('span', { class: 'tag' }, FOUND_BY[f] || f))),
        h('td', { 'data-label': 'Connected', dataset: { field: 'connected' } }, h('span', { class: `presence ${p.connected ? 'online' : 'offline'}` }, p.connected ? 'yes' : 'no')),
        h('td', { 'data-label': 'Path', dataset: { field: 'path' }, title: p.remote_addr || '' }, p.connected ? connectionPath(p.path, p.relay) : '–'),
        h('td', { 'data-label': 'Last seen' }, h('time', { datetime: new Date(p.last_seen_ms).toISOString(), title: date(p.last_seen_ms), dataset: { ms: String(p.last_seen_ms) } }, relative(p.last_seen_ms))),
        h('td', { 'data-label': 'Files' }, browse));
    }));
  }

  peerConnection(e) {
    const peer = this.peers.get(e.peer_id);
    if (!peer) {
      this.reloadPeersSoon();
      return;
    }
    peer.connected = e.connected;
    peer.path = e.path ?? null;
    peer.last_seen_ms = Date.now();
    const row = this.peersBody.querySelector(`tr[data-peer-id="${CSS.escape(e.peer_id)}"]`);
    const cell = row?.querySelector('[data-field="connected"]');
    if (cell) replace(cell, h('span', { class: `presence ${e.connected ? 'online' : 'offline'}` }, e.connected ? 'yes' : 'no'));
    // The event names the path, not the relay or the address: the next list has those.
    const path = row?.querySelector('[data-field="path"]');
    if (path) replace(path, e.connected && e.path ? connectionPath(e.path, e.path === 'relayed' ? peer.relay : null) : '–');
  }

  // ---- contacts ----

  async loadContacts() {
    try {
      this.contacts = (await api.get('/contacts')) || [];
    } catch (error) {
      if (!error.sessionEnded) this.contactsAlert.show(error);
      return;
    }
    this.renderContacts();
  }

  renderContacts() {
    this.contactsEmpty.hidden = this.contacts.length > 0;
    replace(this.contactsList, this.contacts.map((c) => {
      const nameId = newId('contact');
      const alert = alertRegion();
      const buttons = [];
      if (c.contact) {
        const remove = h('button', { type: 'button', 'aria-describedby': nameId }, 'Remove');
        remove.addEventListener('click', async () => {
          const result = await busy(remove, () => api.del(`/contacts/${api.seg(c.name)}`), alert);
          if (result?.error) return;
          announce(`Removed ${c.name} from your contacts.`);
          this.loadContacts();
        });
        buttons.push(remove);
      }
      const toggle = h('button', { type: 'button', 'aria-describedby': nameId }, c.blocked ? 'Unblock' : 'Block');
      toggle.addEventListener('click', async () => {
        const result = await busy(toggle, () => api.post(`/contacts/${api.seg(c.name)}/block`, { blocked: !c.blocked }), alert);
        if (result?.error) return;
        announce(`${c.blocked ? 'Unblocked' : 'Blocked'} ${c.name}.`);
        this.loadContacts();
      });
      buttons.push(toggle);
      return h('li', { class: 'contact', dataset: { contact: c.name } },
        h('span', { class: 'presence-cell', dataset: { field: 'presence' } }, this.presenceBadge(c)),
        h('span', { class: 'contact-name', id: nameId }, c.name.length > 24 ? shortPeer(c.name) : c.name),
        c.blocked ? h('span', { class: 'tag warn' }, 'blocked') : null,
        h('span', { class: 'actions' },
          c.blocked ? null : h('a', { href: `#/chats/${encodeURIComponent(c.name)}`, class: 'button', 'aria-label': `Open chat with ${c.name}` }, 'Chat'),
          buttons),
        alert.el);
    }));
  }

  presenceBadge(c) {
    if (c.online === true) return h('span', { class: 'presence online' }, 'online');
    const seen = c.last_seen ? h('time', { datetime: new Date(c.last_seen).toISOString(), title: date(c.last_seen), dataset: { ms: String(c.last_seen) } }, relative(c.last_seen)) : null;
    if (c.online === false) return h('span', { class: 'presence offline' }, 'offline', seen ? [', seen ', seen] : null);
    return h('span', { class: 'presence unknown' }, 'presence unknown');
  }

  presence(e) {
    const contact = this.contacts.find((c) => c.name === e.name);
    if (!contact) return;
    contact.online = e.online;
    if (!e.online) contact.last_seen = Date.now();
    const li = this.contactsList.querySelector(`li[data-contact="${CSS.escape(e.name)}"] [data-field="presence"]`);
    if (li) replace(li, this.presenceBadge(contact));
  }

  tick(now) {
    if (now % 30000 > 1000) return;
    for (const t of this.el.querySelectorAll('time[data-ms]')) t.textContent = relative(Number(t.dataset.ms), now);
  }
}
