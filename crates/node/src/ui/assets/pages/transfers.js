// The Transfers page (#/transfers): every download with live progress
// (download_progress / download_changed / download_removed), its sources and
// the buttons that apply to its state (Pause, Resume, Cancel, Remove, Open
// folder); uploads running now (upload_started / upload_ended); and the
// requests waiting for an answer. Owns the downloads and uploads shown.

import * as api from '../lib/api.js';
import * as requests from '../lib/requests.js';
import * as clock from '../lib/clock.js';
import { Page, section } from '../lib/page.js';
import { h, alertRegion, busy, replace, announce, empty, debounce } from '../lib/dom.js';
import { bytes, rate, percent, duration, shortPeer, who, date, relative, plural, dataPath } from '../lib/format.js';

/** Which buttons each state offers. */
const ACTIONS = {
  active: ['pause', 'cancel'],
  queued: ['pause', 'resume', 'cancel'],
  paused: ['resume', 'cancel'],
  failed: ['resume', 'cancel', 'remove'],
  done: ['open', 'remove'],
  cancelled: ['remove'],
};
const LABELS = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel', remove: 'Remove', open: 'Open folder' };
const FOUND = { named: 'named', search: 'search', lookup: 'lookup', hint: 'hint from a source', asked: 'asked us' };

export class TransfersPage extends Page {
  constructor() {
    super('transfers', 'Transfers');
    this.rows = new Map(); // download id → row
    this.uploads = new Map(); // upload id → row element
    this.fetching = new Set();
    this.asked = new Set(); // "download:peer" pairs whose user name was asked for
    this.nameUploadsSoon = debounce(() => this.nameUploads(), 300);
  }

  build() {
    this.downloadsAlert = alertRegion();
    this.downloadsList = h('ul', { class: 'downloads', 'aria-label': 'Downloads' });
    this.downloadsEmpty = empty('No downloads yet. Find files in Search, or a person\'s files in People.');
    const clean = h('button', { type: 'button' }, 'Delete leftover partial files');
    clean.addEventListener('click', async () => {
      const report = await busy(clean, () => api.post('/downloads/clean'), this.downloadsAlert);
      if (!report || report.error) return;
      this.downloadsAlert.info(report.removed?.length
        ? `Deleted ${plural(report.removed.length, 'file')}, ${bytes(report.bytes_freed)} freed.`
        : 'No leftover partial files.');
    });
    this.uploadsBody = h('tbody');
    this.uploadsTable = h('table', { class: 'stack' },
      h('caption', { class: 'visually-hidden' }, 'Uploads running now'),
      h('thead', {}, h('tr', {}, ['File', 'To', 'Path', 'Size', 'Sent', 'Rate', 'Started'].map((t) => h('th', { scope: 'col' }, t)))),
      this.uploadsBody);
    this.uploadsEmpty = empty('Nobody is downloading from you right now.');
    this.uploadsAlert = alertRegion();
    this.requestsList = h('ul', { class: 'requests', 'aria-label': 'Requests waiting for your answer' });
    this.requestsEmpty = empty('No requests are waiting. With the policy “ask”, requests for your files wait here for your answer.');

    this.el.append(
      section('Downloads', h('div', { class: 'toolbar' }, clean), this.downloadsAlert.el, this.downloadsEmpty, this.downloadsList),
      section('Uploads', this.uploadsAlert.el, this.uploadsEmpty, h('div', { class: 'table-wrap' }, this.uploadsTable)),
      section('Pending requests', this.requestsEmpty, this.requestsList),
    );
  }

  subscribe() {
    this.listen('download_progress', (e) => this.progress(e));
    this.listen('download_changed', (e) => this.upsert(e.download, true));
    this.listen('download_removed', (e) => this.removeRow(e.id));
    this.listen('upload_started', (e) => this.upsertUpload(e.upload));
    this.listen('upload_ended', (e) => this.removeUpload(e.upload.id));
    this.unsubscribers.push(requests.subscribe((list) => this.renderRequests(list)));
    this.unsubscribers.push(clock.everySecond((now) => this.tick(now)));
  }

  async load() {
    const [downloads, uploads] = await Promise.allSettled([api.get('/downloads'), api.get('/uploads')]);
    if (downloads.status === 'fulfilled') {
      this.downloadsAlert.clear();
      const seen = new Set();
      const list = downloads.value || [];
      for (const view of list) {
        seen.add(view.id);
        this.upsert(view, false);
      }
      for (const id of [...this.rows.keys()]) if (!seen.has(id)) this.removeRow(id);
      // Newest first, as the daemon lists them (moved only when out of order, to keep focus).
      const order = list.map((view) => this.rows.get(view.id).el);
      if (order.some((el, i) => this.downloadsList.children[i] !== el)) this.downloadsList.append(...order);
    } else if (!downloads.reason?.sessionEnded) {
      this.downloadsAlert.show(downloads.reason);
    }
    const failed = downloads.status === 'rejected' ? this.downloadsEmpty : null;
    if (uploads.status === 'fulfilled') {
      this.uploadsAlert.clear();
      replace(this.uploadsBody);
      this.uploads.clear();
      for (const upload of uploads.value || []) this.upsertUpload(upload);
    } else if (!uploads.reason?.sessionEnded) {
      this.uploadsAlert.show(uploads.reason);
    }
    this.updateEmpty();
    // Say nothing about what could not be loaded.
    if (failed) failed.hidden = true;
    if (uploads.status === 'rejected') this.uploadsEmpty.hidden = true;
  }

  updateEmpty() {
    this.downloadsEmpty.hidden = this.rows.size > 0;
    this.uploadsEmpty.hidden = this.uploads.size > 0;
    this.uploadsTable.hidden = this.uploads.size === 0;
  }

  // ---- downloads ----

  upsert(view, live) {
    let row = this.rows.get(view.id);
    const before = row?.view.state;
    if (!row) {
      row = this.buildRow(view);
      this.rows.set(view.id, row);
      this.downloadsList.prepend(row.el);
    }
    // Events carry sources without user names: keep the names the list gave.
    const names = new Map((row.view.peers || []).map((p) => [p.peer_id, p.user]));
    for (const p of view.peers || []) if (!p.user && names.get(p.peer_id)) p.user = names.get(p.peer_id);
    row.view = { ...row.view, ...view };
    row.at = Date.now();
    this.renderRow(row);
    if (live && before && before !== view.state) {
      if (view.state === 'done') announce(`${view.name} finished downloading.`);
      else if (view.state === 'failed') announce(`${view.name} failed: ${view.error || 'no reason given'}`);
    }
    this.updateEmpty();
  }

  progress(p) {
    const row = this.rows.get(p.id);
    if (!row) {
      this.fetchOne(p.id);
      return;
    }
    const names = new Map((row.view.peers || []).map((s) => [s.peer_id, s.user]));
    const peers = (p.peers || []).map((s) => ({ ...s, user: s.user || names.get(s.peer_id) || null }));
    row.view = { ...row.view, ...p, peers: p.peers ? peers : row.view.peers };
    row.at = Date.now();
    this.renderProgress(row);
    this.renderSources(row);
    // Events carry no user names: ask the daemon once for each new source's name.
    const unnamed = peers.filter((s) => !s.user && !this.asked.has(`${p.id}:${s.peer_id}`));
    if (unnamed.length) {
      for (const s of unnamed) this.asked.add(`${p.id}:${s.peer_id}`);
      this.fetchOne(p.id);
    }
  }

  async fetchOne(id) {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    try {
      this.upsert(await api.get(`/downloads/${id}`), false);
    } catch { /* gone already */ }
    this.fetching.delete(id);
  }

  removeRow(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const hadFocus = row.el.contains(document.activeElement);
    row.el.remove();
    this.rows.delete(id);
    if (hadFocus) this.heading.focus();
    this.updateEmpty();
  }

  buildRow(view) {
    const nameId = `download-${view.id}-name`;
    const row = { view, at: Date.now(), buttons: {}, alert: alertRegion() };
    row.name = h('h3', { class: 'file-name', id: nameId });
    row.state = h('span', { class: 'state', dataset: { field: 'state' } });
    row.bar = h('progress', { 'aria-labelledby': nameId, max: 1, value: 0 });
    row.percent = h('span', { class: 'percent', dataset: { field: 'percent' } });
    row.done = h('span', { dataset: { field: 'bytes' } });
    row.rate = h('span', { dataset: { field: 'rate' } });
    row.eta = h('span', { dataset: { field: 'eta' } });
    row.note = h('p', { class: 'note', dataset: { field: 'note' }, hidden: true });
    row.sourcesSummary = h('summary', {});
    row.sourcesList = h('ul', { class: 'sources' });
    row.sources = h('details', { class: 'sources-box', dataset: { field: 'sources' } }, row.sourcesSummary, row.sourcesList);
    row.opened = h('p', { class: 'note opened', hidden: true });
    const actions = h('div', { class: 'actions' });
    for (const [action, label] of Object.entries(LABELS)) {
      const button = h('button', { type: 'button', class: action === 'open' ? 'primary' : '', 'aria-describedby': nameId, hidden: true }, label);
      button.addEventListener('click', () => this.act(row, action, button));
      row.buttons[action] = button;
      actions.append(button);
    }
    row.el = h('li', { class: 'download card', dataset: { downloadId: String(view.id) }, 'aria-labelledby': nameId },
      h('div', { class: 'dl-head' }, row.name, row.state),
      h('div', { class: 'dl-bar' }, row.bar, row.percent),
      h('p', { class: 'meta' }, row.done, h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '), row.rate,
        h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '), 'ETA ', row.eta),
      row.note, row.sources, actions, row.opened, row.alert.el);
    return row;
  }

  renderRow(row) {
    const v = row.view;
    row.name.textContent = v.name;
    row.name.title = v.file_id || '';
    row.state.textContent = v.state;
    row.state.className = `state state-${v.state}`;
    row.el.dataset.state = v.state;
    const offered = new Set(ACTIONS[v.state] || []);
    for (const [action, button] of Object.entries(row.buttons)) button.hidden = !offered.has(action);
    if (v.state !== 'done') row.opened.hidden = true;
    this.renderProgress(row);
    this.renderNote(row, Date.now());
    this.renderSources(row);
  }

  renderProgress(row) {
    const v = row.view;
    const size = v.size || 0;
    const done = v.state === 'done' ? size : Math.min(v.verified_bytes || 0, size || Infinity);
    row.bar.max = Math.max(size, 1);
    row.bar.value = size ? done : (v.state === 'done' ? 1 : 0);
    const pct = v.state === 'done' ? 100 : percent(done, size);
    row.percent.textContent = `${pct} %`;
    row.bar.setAttribute('aria-valuetext', `${pct} %, ${bytes(done)} of ${bytes(size)}`);
    row.done.textContent = `${bytes(done)} of ${bytes(size)}`;
    const moving = v.state === 'active' && v.running !== false;
    row.rate.textContent = moving ? rate(v.rate_bytes_per_sec, 'waiting for data') : '–';
    this.renderEta(row, Date.now());
  }

  renderEta(row, now) {
    const v = row.view;
    if (v.state === 'active' && v.eta_secs !== null && v.eta_secs !== undefined) {
      row.eta.textContent = duration(v.eta_secs - (now - row.at) / 1000);
    } else if (v.state === 'done') {
      row.eta.textContent = 'done';
    } else {
      row.eta.textContent = '–';
    }
  }

  renderNote(row, now) {
    const v = row.view;
    let text = '';
    if (v.state === 'queued' && v.next_try_ms) {
      text = `${v.error ? `${v.error}. ` : ''}Next try ${relative(v.next_try_ms, now)}.`;
    } else if (v.state === 'failed') {
      text = v.error || 'Failed.';
    } else if (v.state === 'done') {
      text = `${v.path ? `Saved as ${v.path}` : 'Finished'}${v.finished_at ? `, ${date(v.finished_at * 1000)}` : ''}.`;
    } else if (v.error) {
      text = v.error;
    }
    row.note.textContent = text;
    row.note.hidden = !text;
    row.note.classList.toggle('warn', v.state === 'failed');
  }

  renderSources(row) {
    const peers = row.view.peers || [];
    const sending = row.view.sources ?? peers.filter((p) => p.phase === 'fetching').length;
    row.sourcesSummary.textContent = peers.length
      ? `Sources: ${sending} sending, ${peers.length} in all`
      : `Sources: ${sending} sending`;
    replace(row.sourcesList, peers.map((p) => h('li', { class: `source phase-${p.phase}` },
      h('span', { class: 'who' }, p.user ? h('strong', {}, p.user) : null, ' ', h('code', { title: p.peer_id }, shortPeer(p.peer_id))),
      h('span', { class: 'tags' },
        h('span', { class: 'tag', title: 'How this download found the source' }, `found by ${FOUND[p.found_by] || p.found_by}`),
        h('span', { class: `tag phase phase-${p.phase}` }, p.phase),
        p.path ? h('span', { class: 'tag path', title: 'How its data travels' }, dataPath(p.path)) : null),
      h('span', { class: 'meta' }, `${bytes(p.bytes)}${p.rate_bytes_per_sec ? `, ${rate(p.rate_bytes_per_sec)}` : ''}`),
      p.note ? h('span', { class: 'note' }, p.note) : null)));
  }

  async act(row, action, button) {
    const id = row.view.id;
    const result = await busy(button, async () => {
      switch (action) {
        case 'remove':
          await api.del(`/downloads/${id}`);
          this.removeRow(id);
          return null;
        case 'open': {
          const answer = await api.post(`/downloads/${id}/open`);
          row.opened.textContent = `Opened ${answer?.path || 'the folder'} on the daemon's machine.`;
          row.opened.hidden = false;
          return null;
        }
        default:
          return api.post(`/downloads/${id}/${action}`);
      }
    }, row.alert);
    if (result && !result.error && result.id !== undefined) this.upsert(result, true);
    // The clicked button may be hidden in the new state: keep focus in the row.
    if (this.rows.has(id) && (document.activeElement === document.body || button.hidden)) {
      const next = Object.values(row.buttons).find((b) => !b.hidden);
      (next || this.heading).focus();
    }
  }

  tick(now) {
    for (const row of this.rows.values()) {
      if (row.view.state === 'active') this.renderEta(row, now);
      if (row.view.state === 'queued') this.renderNote(row, now);
    }
  }

  // ---- uploads ----

  upsertUpload(u) {
    const cells = [
      ['File', h('span', { class: 'file-name' }, u.name)],
      ['To', h('span', {}, u.user ? h('strong', {}, u.user) : null, ' ', h('code', { title: u.peer }, shortPeer(u.peer)))],
      ['Path', dataPath(u.path)],
      ['Size', bytes(u.size)],
      ['Sent', bytes(u.sent_bytes)],
      ['Rate', rate(u.rate_bytes_per_sec)],
      ['Started', date(u.started_ms)],
    ];
    const tr = h('tr', { dataset: { uploadId: String(u.id) } }, cells.map(([label, value]) => h('td', { 'data-label': label }, value)));
    const old = this.uploads.get(u.id);
    if (old) old.replaceWith(tr);
    else this.uploadsBody.prepend(tr);
    this.uploads.set(u.id, tr);
    if (!u.user) this.nameUploadsSoon();
    this.updateEmpty();
  }

  /** Upload events carry no user names; the uploads list does. */
  async nameUploads() {
    let uploads;
    try {
      uploads = await api.get('/uploads');
    } catch {
      return;
    }
    for (const u of uploads || []) if (u.user && this.uploads.has(u.id)) this.upsertUpload(u);
  }

  removeUpload(id) {
    this.uploads.get(id)?.remove();
    this.uploads.delete(id);
    this.updateEmpty();
  }

  // ---- requests ----

  renderRequests(list) {
    this.requestsEmpty.hidden = list.length > 0;
    const keep = new Set(list.map((p) => String(p.request.id)));
    for (const li of [...this.requestsList.children]) {
      if (!keep.has(li.dataset.pendingRequestId)) li.remove();
    }
    const present = new Set([...this.requestsList.children].map((li) => li.dataset.pendingRequestId));
    for (const { request } of list) {
      if (present.has(String(request.id))) {
        const asker = this.requestsList.querySelector(`[data-pending-request-id="${request.id}"] .asker`);
        if (asker) asker.textContent = who(request.user, request.peer);
        continue;
      }
      const alert = alertRegion();
      const accept = h('button', { type: 'button', class: 'primary' }, 'Accept');
      const reject = h('button', { type: 'button' }, 'Reject');
      const act = (yes) => busy([accept, reject], async () => {
        const answer = await requests.answer(request.id, yes);
        announce(yes && answer?.granted === false
          ? `Accepted ${request.name}, but every upload slot is busy.`
          : `${yes ? 'Accepted' : 'Rejected'} the request for ${request.name}.`);
      }, alert);
      accept.addEventListener('click', () => act(true));
      reject.addEventListener('click', () => act(false));
      this.requestsList.append(h('li', { class: 'request card', dataset: { pendingRequestId: String(request.id) } },
        h('p', {}, h('strong', { class: 'asker', title: request.peer }, who(request.user, request.peer)), ' asks for ', h('strong', { class: 'file-name' }, request.name),
          ` (${bytes(request.size)})`),
        h('div', { class: 'actions' }, accept, reject), alert.el));
    }
  }
}
