// The Settings page (#/settings): this node (peer id, addresses, folders),
// the index account (connection state live from index_changed; register,
// log in, log out, unregister with confirmation), the policy for requests,
// rate limits and upload slots, the index's audit log (admins), and logging
// out of the web UI. Owns the forms' current values.

import * as api from '../lib/api.js';
import * as status from '../lib/status.js';
import { Page, section } from '../lib/page.js';
import { h, field, alertRegion, busy, replace, copyText, announce } from '../lib/dom.js';
import { rate, date, relative, indexStateLabel, shortPeer } from '../lib/format.js';

const KIB = 1024;
const AUDIT_PAGE = 50;
const POLICIES = [
  ['accept', 'Accept every request', 'Anyone may download your shared files while upload slots are free.'],
  ['ask', 'Ask me each time', 'Each request waits for your Accept or Reject.'],
  ['contacts', 'Accept contacts, ask for everyone else', 'Your contacts download without asking; others wait for your answer.'],
];

export class SettingsPage extends Page {
  constructor() {
    super('settings', 'Settings');
    this.auditOffset = 0;
  }

  build() {
    this.el.append(this.buildNode(), this.buildAccount(), this.buildPolicy(), this.buildLimits(), this.buildAudit(), this.buildWebUi());
  }

  subscribe() {
    this.unsubscribers.push(status.subscribe((s) => this.showStatus(s)));
    this.listen('settings_changed', (e) => {
      if (e.policy) this.showPolicy(e.policy);
      if (e.limits) this.showLimits(e.limits);
    });
  }

  async load() {
    const [st, limits] = await Promise.allSettled([status.refresh(), api.get('/limits')]);
    if (st.status === 'rejected' && !st.reason?.sessionEnded) this.accountAlert.show(st.reason);
    if (limits.status === 'fulfilled') {
      this.limitsAlert.clear();
      this.showLimits(limits.value);
    } else if (!limits.reason?.sessionEnded) {
      this.limitsAlert.show(limits.reason);
      const s = status.current();
      if (s) this.showLimits({ max_uploads: s.max_uploads, max_upload_peers: s.max_upload_peers });
    }
  }

  // ---- this node ----

  buildNode() {
    this.nodeFacts = h('dl', { class: 'facts' });
    this.nodeAlert = alertRegion();
    return section('This node', this.nodeFacts, this.nodeAlert.el);
  }

  showNode(s) {
    // Redraw only when something shown changed (keeps focus on the copy button).
    const key = JSON.stringify([s.peer_id, s.addrs, s.downloads_dir, s.shares, s.sharing_online, s.shared_files, s.uploads_running]);
    if (key === this.nodeKey) return;
    this.nodeKey = key;
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy peer id');
    copy.addEventListener('click', async () => {
      const done = await copyText(s.peer_id);
      this.nodeAlert.info(done ? 'Peer id copied.' : `Copy it by hand: ${s.peer_id}`);
    });
    replace(this.nodeFacts,
      h('dt', {}, 'Peer id'), h('dd', {}, h('code', { class: 'wrap' }, s.peer_id), ' ', copy),
      h('dt', {}, 'Reachable at'), h('dd', {}, (s.addrs || []).length
        ? h('ul', { class: 'plain' }, s.addrs.map((a) => h('li', {}, h('code', { class: 'wrap' }, a))))
        : 'no address yet'),
      h('dt', {}, 'Downloads folder'), h('dd', {}, h('code', { class: 'wrap' }, s.downloads_dir)),
      h('dt', {}, 'Shared folders'), h('dd', {}, (s.shares || []).length ? h('ul', { class: 'plain' }, s.shares.map((p) => h('li', {}, h('code', { class: 'wrap' }, p)))) : 'none'),
      h('dt', {}, 'Sharing'), h('dd', {}, `${s.sharing_online ? 'online' : 'offline'}, ${s.shared_files} files`),
      h('dt', {}, 'Uploads'), h('dd', {}, `${s.uploads_running} peers served now`));
  }

  // ---- index account ----

  buildAccount() {
    this.indexFacts = h('dl', { class: 'facts', 'aria-live': 'polite' });
    this.accountAlert = alertRegion();
    const user = field('User name', { name: 'username', autocomplete: 'username', required: true, spellcheck: 'false' });
    const password = field('Password', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const register = h('button', { type: 'submit', value: 'register' }, 'Register');
    const login = h('button', { type: 'submit', value: 'login', class: 'primary' }, 'Log in');
    this.loginForm = h('form', { class: 'account-form', novalidate: true },
      h('p', {}, 'Log in to the index to be listed, to search it and to receive messages by name; register once to create your account.'),
      user.wrap, password.wrap, h('div', { class: 'actions' }, login, register));
    this.loginForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = user.input.value.trim();
      const pass = password.input.value;
      if (!name || !pass) {
        this.accountAlert.show('Type a user name and a password.');
        return;
      }
      const action = e.submitter?.value === 'register' ? 'register' : 'login';
      const session = await busy([register, login], () => api.post(`/index/${action}`, { name, password: pass }), this.accountAlert);
      if (!session || session.error) return;
      password.input.value = '';
      if (session.index) status.patch({ index: session.index });
      this.accountAlert.info(`${action === 'register' ? 'Registered and logged in' : 'Logged in'} as ${session.name}. ${session.index?.message || ''}`.trim());
      announce(`Logged in as ${session.name}.`);
    });

    const logout = h('button', { type: 'button' }, 'Log out of the index');
    logout.addEventListener('click', async () => {
      const result = await busy(logout, () => api.post('/index/logout'), this.accountAlert);
      if (result?.error) return;
      this.accountAlert.info('Logged out of the index: this peer left it.');
      status.refresh().catch(() => {});
    });
    const unregister = h('button', { type: 'button', class: 'danger', 'aria-expanded': 'false', 'aria-controls': 'unregister-confirm' }, 'Unregister…');
    const confirmText = h('p', {});
    const confirm = h('button', { type: 'button', class: 'danger' }, 'Delete account');
    const keep = h('button', { type: 'button' }, 'Keep account');
    this.confirmBox = h('div', { class: 'confirm-box', id: 'unregister-confirm', role: 'group', 'aria-label': 'Confirm unregistering', hidden: true },
      confirmText, h('div', { class: 'actions' }, confirm, keep));
    const closeConfirm = () => {
      this.confirmBox.hidden = true;
      unregister.setAttribute('aria-expanded', 'false');
    };
    unregister.addEventListener('click', () => {
      const s = status.current();
      confirmText.textContent = `Delete the account ${s?.index?.user || ''} on ${s?.index?.url || 'the index'}, with its peers and files listing? This cannot be undone.`;
      this.confirmBox.hidden = false;
      unregister.setAttribute('aria-expanded', 'true');
      keep.focus();
    });
    keep.addEventListener('click', () => {
      closeConfirm();
      unregister.focus();
    });
    confirm.addEventListener('click', async () => {
      const result = await busy([confirm, keep], () => api.post('/index/unregister'), this.accountAlert);
      if (result?.error) return;
      closeConfirm();
      this.accountAlert.info('Your account is deleted.');
      status.refresh().catch(() => {});
    });
    this.accountActions = h('div', { class: 'account-actions' }, h('div', { class: 'actions' }, logout, unregister), this.confirmBox);
    this.noIndex = h('p', { class: 'empty', hidden: true }, 'This daemon uses no index (serverless mode): people and files are found through the DHT and the LAN.');
    return section('Index account', this.indexFacts, this.noIndex, this.accountAlert.el, this.loginForm, this.accountActions);
  }

  showStatus(s) {
    if (!this.built) return;
    this.showNode(s);
    this.showPolicy(s.policy);
    const index = s.index;
    this.noIndex.hidden = !!index;
    if (!index) {
      replace(this.indexFacts);
      this.loginForm.hidden = true;
      this.accountActions.hidden = true;
      return;
    }
    replace(this.indexFacts,
      h('dt', {}, 'Index'), h('dd', {}, h('code', { class: 'wrap' }, index.url)),
      h('dt', {}, 'State'), h('dd', {}, h('span', { class: `badge state-${index.state}`, dataset: { field: 'index-state', state: index.state } }, indexStateLabel(index.state, null))),
      h('dt', {}, 'What is going on'), h('dd', {}, index.message || '–'),
      h('dt', {}, 'Logged in as'), h('dd', { dataset: { field: 'index-user' } }, index.user || 'nobody'),
      h('dt', {}, 'Files listed'), h('dd', {}, String(index.published_files ?? 0)),
      h('dt', {}, 'Last contact'), h('dd', {}, index.last_contact_ms ? h('time', { title: date(index.last_contact_ms) }, relative(index.last_contact_ms)) : 'never'));
    const loggedIn = !!index.user && index.state !== 'logged_out';
    this.loginForm.hidden = loggedIn;
    this.accountActions.hidden = !loggedIn;
    if (!loggedIn) this.confirmBox.hidden = true;
  }

  // ---- policy ----

  buildPolicy() {
    this.policyAlert = alertRegion();
    this.policyInputs = {};
    const options = POLICIES.map(([value, label, hint]) => {
      const input = h('input', { type: 'radio', name: 'policy', value, id: `policy-${value}`, 'aria-describedby': `policy-${value}-hint` });
      this.policyInputs[value] = input;
      return h('div', { class: 'radio' }, input, h('label', { for: input.id }, label), h('span', { class: 'hint', id: `policy-${value}-hint` }, hint));
    });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save policy');
    const form = h('form', {}, h('fieldset', {}, h('legend', {}, 'When someone asks for one of your files'), options), save, this.policyAlert.el);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const chosen = Object.values(this.policyInputs).find((i) => i.checked)?.value;
      if (!chosen) return;
      const result = await busy(save, () => api.post('/policy', { policy: chosen }), this.policyAlert);
      if (!result || result.error) return;
      status.patch({ policy: result.policy });
      this.policyAlert.info(`Saved: ${POLICIES.find((p) => p[0] === result.policy)?.[1] || result.policy}.`);
    });
    return section('Requests for your files', form);
  }

  showPolicy(policy) {
    if (this.policyInputs[policy] && document.activeElement?.name !== 'policy') this.policyInputs[policy].checked = true;
  }

  // ---- limits ----

  buildLimits() {
    this.limitsAlert = alertRegion();
    const up = field('Upload rate limit (KiB/s)', { type: 'number', min: '0', step: '1', inputmode: 'numeric', name: 'max_upload_rate' }, '0 means unlimited.');
    const down = field('Download rate limit (KiB/s)', { type: 'number', min: '0', step: '1', inputmode: 'numeric', name: 'max_download_rate' }, '0 means unlimited.');
    const slots = field('Upload slots', { type: 'number', min: '1', step: '1', inputmode: 'numeric', name: 'max_uploads' }, 'Pieces sent at once.');
    const peers = field('Peers served at once', { type: 'number', min: '1', step: '1', inputmode: 'numeric', name: 'max_upload_peers' }, 'More are told “busy” and retry later.');
    this.limitInputs = { max_upload_rate: up.input, max_download_rate: down.input, max_uploads: slots.input, max_upload_peers: peers.input };
    this.limitsNow = h('p', { class: 'meta' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save limits');
    const form = h('form', { class: 'limits-form', novalidate: true }, h('div', { class: 'grid' }, up.wrap, down.wrap, slots.wrap, peers.wrap), this.limitsNow, save, this.limitsAlert.el);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {};
      try {
        for (const [key, input] of Object.entries(this.limitInputs)) {
          const text = input.value.trim();
          if (text === '') continue;
          const n = Number(text);
          const isRate = key.endsWith('_rate');
          if (!Number.isInteger(n) || n < (isRate ? 0 : 1)) {
            throw new Error(`${input.labels[0].textContent} must be a whole number${isRate ? ', 0 or more' : ', 1 or more'}.`);
          }
          body[key] = isRate ? n * KIB : n;
        }
      } catch (error) {
        this.limitsAlert.show(error);
        return;
      }
      const result = await busy(save, () => api.post('/limits', body), this.limitsAlert);
      if (!result || result.error) return;
      this.showLimits(result);
      this.limitsAlert.info('Saved: the new limits apply now.');
    });
    return section('Transfer limits', form);
  }

  showLimits(limits) {
    const setIf = (key, value) => {
      const input = this.limitInputs[key];
      if (value === undefined || input === document.activeElement) return;
      input.value = value === null ? '0' : String(value);
    };
    if ('max_upload_rate' in limits) setIf('max_upload_rate', limits.max_upload_rate ? Math.round(limits.max_upload_rate / KIB) : 0);
    if ('max_download_rate' in limits) setIf('max_download_rate', limits.max_download_rate ? Math.round(limits.max_download_rate / KIB) : 0);
    setIf('max_uploads', limits.max_uploads);
    setIf('max_upload_peers', limits.max_upload_peers);
    if ('max_upload_rate' in limits || 'max_download_rate' in limits) {
      this.limitsNow.textContent = `Now: uploads ${rate(limits.max_upload_rate, 'unlimited')}, downloads ${rate(limits.max_download_rate, 'unlimited')}.`;
    }
  }

  // ---- audit ----

  buildAudit() {
    this.auditAlert = alertRegion();
    const show = h('button', { type: 'button' }, 'Show audit log');
    show.addEventListener('click', () => {
      this.auditOffset = 0;
      busy(show, () => this.loadAudit(), this.auditAlert);
    });
    this.auditBody = h('tbody');
    this.auditTable = h('table', { class: 'stack audit', hidden: true },
      h('caption', { class: 'visually-hidden' }, 'Audit log, newest first'),
      h('thead', {}, h('tr', {}, ['When', 'User', 'Peer', 'Action', 'Outcome', 'Detail', 'Client'].map((t) => h('th', { scope: 'col' }, t)))),
      this.auditBody);
    this.auditSummary = h('p', { class: 'pager-summary' });
    this.auditPrev = h('button', { type: 'button' }, 'Newer');
    this.auditNext = h('button', { type: 'button' }, 'Older');
    this.auditPrev.addEventListener('click', () => {
      this.auditOffset = Math.max(0, this.auditOffset - AUDIT_PAGE);
      busy(this.auditPrev, () => this.loadAudit(), this.auditAlert);
    });
    this.auditNext.addEventListener('click', () => {
      this.auditOffset += AUDIT_PAGE;
      busy(this.auditNext, () => this.loadAudit(), this.auditAlert);
    });
    this.auditPager = h('nav', { class: 'pager', 'aria-label': 'Audit log pages', hidden: true }, this.auditPrev, this.auditSummary, this.auditNext);
    return section('Audit log',
      h('p', {}, 'The index records every operation: who, what, when. Only the index\'s admins may read it.'),
      h('div', { class: 'toolbar' }, show), this.auditAlert.el,
      h('div', { class: 'table-wrap' }, this.auditTable), this.auditPager);
  }

  async loadAudit() {
    const page = await api.get('/index/audit', { limit: AUDIT_PAGE, offset: this.auditOffset });
    const entries = page?.entries || [];
    this.auditTable.hidden = false;
    replace(this.auditBody, entries.length ? entries.map((e) => h('tr', {},
      h('td', { 'data-label': 'When' }, h('time', { datetime: new Date(e.at).toISOString() }, date(e.at))),
      h('td', { 'data-label': 'User' }, e.user || '–'),
      h('td', { 'data-label': 'Peer' }, e.peer_id ? h('code', { title: e.peer_id }, shortPeer(e.peer_id)) : '–'),
      h('td', { 'data-label': 'Action' }, e.action),
      h('td', { 'data-label': 'Outcome' }, h('span', { class: e.outcome === 'ok' ? 'tag ok' : 'tag warn' }, e.outcome)),
      h('td', { 'data-label': 'Detail', class: 'wrap' }, e.detail || ''),
      h('td', { 'data-label': 'Client' }, e.client || ''))) : h('tr', {}, h('td', { colspan: 7 }, 'The log is empty.')));
    const total = page?.total ?? entries.length;
    this.auditPager.hidden = total <= AUDIT_PAGE;
    this.auditPrev.disabled = this.auditOffset === 0;
    this.auditNext.disabled = this.auditOffset + entries.length >= total;
    this.auditSummary.textContent = entries.length ? `${this.auditOffset + 1}–${this.auditOffset + entries.length} of ${total}` : '';
  }

  // ---- web UI ----

  buildWebUi() {
    const alert = alertRegion();
    const logout = h('button', { type: 'button' }, 'Log out of the web UI');
    logout.addEventListener('click', () => busy(logout, () => api.logoutUi(), alert));
    return section('Web UI',
      h('p', {}, 'Logging out ends this browser\'s session; ', h('code', {}, 'peershare ui'), ' prints a fresh login link.'),
      h('div', { class: 'toolbar' }, logout), alert.el);
  }
}
