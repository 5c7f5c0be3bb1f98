// The Shares page (#/shares): sharing online/offline, rescanning, the shared
// folders (add by path, remove), hashing progress (shares_hashing events) and
// every shared file with its size, id and a "Copy link" button for its
// peershare: link. Reloads on shares_changed. Owns the shares list shown.

import * as api from '../lib/api.js';
import * as status from '../lib/status.js';
import { Page, section } from '../lib/page.js';
import { pager } from '../lib/pager.js';
import { h, field, alertRegion, busy, replace, empty, copyText, debounce, newId, announce } from '../lib/dom.js';
import { bytes, plural, shortId, percent } from '../lib/format.js';

const PAGE = 50;

export class SharesPage extends Page {
  constructor() {
    super('shares', 'Shares');
    this.files = [];
    this.reloadSoon = debounce(() => this.reload(), 400);
  }

  build() {
    // Sharing on/off and rescan.
    this.onlineAlert = alertRegion();
    this.online = h('input', { type: 'checkbox', role: 'switch', id: 'sharing-online' });
    this.onlineState = h('span', { class: 'switch-state', 'aria-hidden': 'true' });
    this.online.addEventListener('change', () => this.setOnline(this.online.checked));
    this.count = h('p', { class: 'meta' });
    const rescan = h('button', { type: 'button' }, 'Rescan');
    rescan.addEventListener('click', async () => {
      const report = await busy(rescan, () => api.post('/rescan'), this.onlineAlert);
      if (!report || report.error) return;
      this.onlineAlert.info(`Rescanned: ${plural(report.shared_files, 'file')} shared, ${report.hashed} hashed anew.`);
      this.reloadSoon();
    });

    // Hashing progress.
    this.hashBar = h('progress', { id: 'hashing-progress', max: 1, value: 0 });
    this.hashText = h('span', { class: 'meta' });
    this.hashing = h('div', { class: 'hashing', hidden: true },
      h('label', { for: 'hashing-progress' }, 'Hashing new and changed files'), this.hashBar, this.hashText);

    // Folders.
    this.folderAlert = alertRegion();
    this.folders = h('ul', { class: 'folders', 'aria-label': 'Shared folders' });
    this.foldersEmpty = empty('No folder is shared yet.');
    const folderInput = field('Folder to share', { name: 'folder', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: '/home/me/Videos' }, 'An absolute path on the daemon\'s machine.');
    const add = h('button', { type: 'submit', class: 'primary' }, 'Add folder');
    const form = h('form', { class: 'inline-form', novalidate: true }, folderInput.wrap, add);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const path = folderInput.input.value.trim();
      if (!path) {
        this.folderAlert.show('Type the folder\'s path.');
        return;
      }
      this.folderAlert.info(`Adding ${path}; its files are being hashed…`);
      const result = await busy(add, () => api.post('/shares/folders', { path }), this.folderAlert);
      if (!result || result.error) return;
      folderInput.input.value = '';
      this.folderAlert.info(`Sharing ${path}: ${plural(result.shared_files, 'file')} shared in all, ${result.hashed} hashed.`);
      this.reload();
    });

    // Files.
    this.filesAlert = alertRegion();
    const filter = field('Filter shared files', { type: 'search', autocomplete: 'off' });
    filter.input.addEventListener('input', debounce(() => this.renderFiles(), 150));
    this.filter = filter.input;
    this.filesBody = h('tbody');
    this.filesTable = h('table', { class: 'stack files' },
      h('caption', { class: 'visually-hidden' }, 'Shared files'),
      h('thead', {}, h('tr', {}, ['Name', 'Size', 'Id', 'Link'].map((t) => h('th', { scope: 'col' }, t)))),
      this.filesBody);
    this.filesEmpty = empty('Nothing is shared yet: add a folder above.');
    this.pager = pager('Shared files pages', PAGE, (items) => this.renderRows(items));

    this.el.append(
      section('Sharing',
        h('div', { class: 'switch-row' },
          h('label', { for: 'sharing-online', class: 'switch' }, this.online, h('span', {}, 'Share my files with the network'), this.onlineState),
          rescan),
        this.count, this.hashing, this.onlineAlert.el),
      section('Shared folders', this.foldersEmpty, this.folders, this.folderAlert.el, form),
      section('Shared files', filter.wrap, this.filesAlert.el, this.filesEmpty, h('div', { class: 'table-wrap' }, this.filesTable), this.pager.el),
    );
  }

  subscribe() {
    this.listen('shares_changed', () => this.reloadSoon());
    this.listen('shares_hashing', (e) => this.hashingProgress(e));
  }

  hidden() {
    this.reloadSoon.cancel();
  }

  async load() {
    let shares;
    try {
      shares = await api.get('/shares');
    } catch (error) {
      if (!error.sessionEnded) this.filesAlert.show(error);
      return;
    }
    this.filesAlert.clear();
    this.showOnline(shares.online);
    this.count.textContent = `${plural(shares.total ?? shares.files.length, 'file')} shared.`;
    this.renderFolders(shares.folders || []);
    this.files = shares.files || [];
    this.renderFiles(true);
  }

  showOnline(online) {
    this.online.checked = !!online;
    this.onlineState.textContent = online ? 'online' : 'offline';
  }

  async setOnline(online) {
    const result = await busy(this.online, () => api.post('/sharing', { online }), this.onlineAlert);
    if (!result || result.error) {
      this.showOnline(!online);
      return;
    }
    this.showOnline(result.online);
    status.patch({ sharing_online: result.online });
    this.onlineAlert.info(result.online ? 'Your files are offered to the network again.' : 'Your files are withdrawn: nobody can find or download them until you switch sharing back on.');
  }

  renderFolders(folders) {
    this.foldersEmpty.hidden = folders.length > 0;
    replace(this.folders, folders.map((path) => {
      const pathId = newId('folder');
      const remove = h('button', { type: 'button', 'aria-describedby': pathId }, 'Remove');
      remove.addEventListener('click', async () => {
        const result = await busy(remove, () => api.post('/shares/folders/remove', { path }), this.folderAlert);
        if (!result || result.error) return;
        this.folderAlert.info(`Stopped sharing ${path}.`);
        this.reload();
      });
      return h('li', { class: 'folder', dataset: { folder: path } }, h('code', { id: pathId }, path), remove);
    }));
  }

  renderFiles(keepPage = false) {
    const words = this.filter.value.trim().toLowerCase();
    const shown = words ? this.files.filter((f) => f.name.toLowerCase().includes(words) || f.id.startsWith(words)) : this.files;
    this.filesEmpty.hidden = this.files.length > 0;
    this.filesTable.hidden = shown.length === 0;
    this.pager.set(shown, keepPage);
  }

  renderRows(items) {
    replace(this.filesBody, items.map((file) => {
      const nameId = newId('file');
      const copy = h('button', { type: 'button', 'aria-describedby': nameId }, 'Copy link');
      const linkBox = h('span', { class: 'link-box' });
      const alert = alertRegion();
      copy.addEventListener('click', async () => {
        const link = await busy(copy, () => api.get('/link', { file: file.id, with_addrs: true }), alert);
        if (!link || link.error) return;
        const input = h('input', { type: 'text', readOnly: true, value: link.uri, 'aria-label': `Share link of ${file.name}`, class: 'link' });
        replace(linkBox, input);
        const copied = await copyText(link.uri, input);
        alert.info(copied ? 'Link copied.' : 'Copy the selected link.');
        announce(copied ? `Link to ${file.name} copied.` : 'The link is selected; copy it.');
      });
      return h('tr', { dataset: { fileId: file.id } },
        h('td', { 'data-label': 'Name' }, h('span', { class: 'file-name', id: nameId }, file.name)),
        h('td', { 'data-label': 'Size' }, bytes(file.size)),
        h('td', { 'data-label': 'Id' }, h('code', { title: file.id }, shortId(file.id))),
        h('td', { 'data-label': 'Link' }, copy, linkBox, alert.el));
    }));
  }

  hashingProgress(p) {
    const running = p.files_done < p.files_total;
    this.hashing.hidden = !running;
    this.hashBar.max = Math.max(p.bytes_total, 1);
    this.hashBar.value = p.bytes_done;
    this.hashText.textContent = `${p.files_done} of ${plural(p.files_total, 'file')}, ${bytes(p.bytes_done)} of ${bytes(p.bytes_total)} (${percent(p.bytes_done, p.bytes_total)} %)`;
    if (!running) this.reloadSoon();
  }
}
