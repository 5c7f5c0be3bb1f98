// The Search page (#/search): one search box with filters (extension, sizes,
// match mode), the merged answer of the index and the DHT grouped by file
// (names, size, every holder with where it was found), a Download button per
// file, and paging of long answers on the page. Owns the last answer shown.

import * as api from '../lib/api.js';
import * as status from '../lib/status.js';
import * as download from '../lib/download.js';
import { Page } from '../lib/page.js';
import { pager } from '../lib/pager.js';
import { h, field, alertRegion, busy, replace, newId } from '../lib/dom.js';
import { bytes, shortPeer, originLabel, plural, shortId } from '../lib/format.js';

/** Results asked of the index at once (its most per page). */
const FETCH = 500;
/** Results shown per page. */
const PAGE = 50;
const MIB = 1024 * 1024;

// "3 holders", or "10 of 400 holders" when the index listed a sample.
function holderCount(listed, total) {
  return total > listed ? `${listed} of ${plural(total, 'holder')}` : plural(listed, 'holder');
}

export class SearchPage extends Page {
  constructor() {
    super('search', 'Search');
    this.results = [];
    this.total = 0;
    this.params = null;
  }

  build() {
    const query = field('Search files', { type: 'search', name: 'q', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. lecture notes' });
    this.query = query.input;
    const ext = field('Extension', { name: 'ext', list: 'search-ext-list', autocomplete: 'off', placeholder: 'any', size: 8 }, 'e.g. mp4, pdf');
    const extList = h('datalist', { id: 'search-ext-list' },
      ['mp4', 'mkv', 'webm', 'mp3', 'flac', 'ogg', 'pdf', 'epub', 'txt', 'zip', 'iso', 'jpg', 'png'].map((e) => h('option', { value: e })));
    const min = field('Minimum size (MiB)', { type: 'number', name: 'min', min: '0', step: 'any', inputmode: 'decimal' });
    const max = field('Maximum size (MiB)', { type: 'number', name: 'max', min: '0', step: 'any', inputmode: 'decimal' });
    const mode = field('Match', { tag: 'select', name: 'mode' });
    for (const [value, label] of [['words', 'All words'], ['substring', 'Part of the name'], ['exact', 'Exact name'], ['id', 'File id']]) {
      mode.input.append(h('option', { value }, label));
    }
    this.inputs = { ext: ext.input, min: min.input, max: max.input, mode: mode.input };
    this.submit = h('button', { type: 'submit', class: 'primary' }, 'Search');
    this.alert = alertRegion();
    const form = h('form', { class: 'search-form', role: 'search', novalidate: true },
      h('div', { class: 'search-row' }, query.wrap, this.submit),
      h('fieldset', { class: 'filters' }, h('legend', {}, 'Filters'), ext.wrap, extList, min.wrap, max.wrap, mode.wrap),
      this.alert.el);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.search();
    });

    this.summary = h('p', { class: 'summary', 'aria-live': 'polite' });
    this.origins = h('ul', { class: 'origins' });
    this.list = h('ol', { class: 'results', 'aria-label': 'Search results' });
    this.pager = pager('Search results pages', PAGE, (items, offset) => this.renderPage(items, offset));
    this.moreAlert = alertRegion();
    this.more = h('button', { type: 'button', hidden: true }, 'Load more results');
    this.more.addEventListener('click', () => this.loadMore());
    this.resultsBox = h('section', { class: 'results-box', 'aria-labelledby': 'search-results-heading', hidden: true },
      h('h2', { id: 'search-results-heading' }, 'Results'),
      this.summary, this.origins, this.list, this.pager.el, this.more, this.moreAlert.el);
    this.el.append(form, this.resultsBox);
  }

  async load() {
    // Results are the answer to one search: nothing to reload, but keep holders' "you" marks right.
    if (!status.current()) await status.refresh();
  }

  readParams() {
    const q = this.query.value.trim();
    const mib = (input) => {
      const text = input.value.trim();
      if (!text) return undefined;
      const n = Number(text);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${input.labels?.[0]?.textContent || 'Size'} must be a number of MiB, 0 or more.`);
      return Math.round(n * MIB);
    };
    const params = {
      q,
      mode: this.inputs.mode.value,
      ext: this.inputs.ext.value.trim().replace(/^\./, '') || undefined,
      min_size: mib(this.inputs.min),
      max_size: mib(this.inputs.max),
      limit: FETCH,
    };
    if (params.min_size !== undefined && params.max_size !== undefined && params.min_size > params.max_size) {
      throw new Error('The minimum size is larger than the maximum size.');
    }
    return params;
  }

  async search() {
    let params;
    try {
      params = this.readParams();
    } catch (error) {
      this.alert.show(error);
      return;
    }
    if (!params.q) {
      this.alert.show('Type something to search for.');
      this.query.focus();
      return;
    }
    this.params = params;
    this.resultsBox.hidden = false;
    this.list.setAttribute('aria-busy', 'true');
    this.summary.textContent = 'Searching the index and the DHT…';
    replace(this.origins);
    const answer = await busy(this.submit, () => api.get('/search', params), this.alert);
    this.list.removeAttribute('aria-busy');
    if (!answer || answer.error) {
      this.summary.textContent = 'The search did not finish.';
      return;
    }
    this.results = answer.results || [];
    this.total = answer.total || this.results.length;
    this.showOrigins(answer.origins || {});
    this.showResults(false);
  }

  async loadMore() {
    if (!this.params) return;
    const params = { ...this.params, offset: this.results.length };
    const answer = await busy(this.more, () => api.get('/search', params), this.moreAlert);
    if (!answer || answer.error) return;
    const known = new Map(this.results.map((r) => [r.id, r]));
    for (const hit of answer.results || []) {
      const old = known.get(hit.id);
      if (old) {
        for (const holder of hit.sources) {
          if (!old.sources.some((s) => s.peer_id === holder.peer_id)) old.sources.push(holder);
        }
      } else {
        this.results.push(hit);
      }
    }
    if (!answer.results?.length) this.total = this.results.length;
    this.showResults(true);
  }

  showOrigins(origins) {
    const items = [];
    for (const [name, outcome] of Object.entries(origins)) {
      const label = name === 'dht' ? 'DHT and LAN' : name === 'index' ? 'Index' : name;
      if (outcome.ok) items.push(h('li', { class: 'ok' }, `${label}: ${plural(outcome.results, 'file')}`));
      else items.push(h('li', { class: 'warn' }, `${label} not asked: ${outcome.error || 'no reason given'}`));
    }
    replace(this.origins, items);
  }

  showResults(keepPage) {
    const n = this.results.length;
    if (n === 0) {
      this.summary.textContent = `Nothing found for “${this.params.q}” on online peers.`;
    } else if (this.total > n) {
      this.summary.textContent = `${plural(this.total, 'file')} found; the first ${n} are here.`;
    } else {
      this.summary.textContent = `${plural(n, 'file')} found.`;
    }
    this.more.hidden = !(this.total > n);
    this.pager.set(this.results, keepPage);
  }

  renderPage(items) {
    replace(this.list, items.map((hit) => this.renderHit(hit)));
  }

  renderHit(hit) {
    const name = hit.names?.[0] || hit.id;
    const titleId = newId('hit');
    const holders = hit.sources || [];
    const others = (hit.names || []).slice(1);
    const holderList = h('ul', { class: 'holders' }, holders.map((holder) => {
      const me = status.isMe(holder.peer_id);
      return h('li', { class: 'holder' },
        h('span', { class: 'who' }, holder.user ? h('strong', {}, holder.user) : null,
          ' ', h('code', { title: holder.peer_id }, shortPeer(holder.peer_id)), me ? ' (you)' : null),
        h('span', { class: 'tags' },
          [...(holder.found_by || [])].map((o) => h('span', { class: `tag origin-${o}`, title: `Found through the ${originLabel(o)}` }, originLabel(o))),
          h('span', { class: 'tag online' }, 'online')));
    }));
    const details = holders.length > 3
      ? h('details', {}, h('summary', {}, `Show the ${holders.length} holders`), holderList)
      : holderList;
    return h('li', { class: 'result card', dataset: { fileId: hit.id }, 'aria-labelledby': titleId },
      h('div', { class: 'result-head' },
        h('h3', { id: titleId, class: 'file-name' }, name),
        download.button(name, hit.id, holders).el),
      others.length ? h('p', { class: 'also' }, 'Also shared as: ', others.join(', ')) : null,
      h('p', { class: 'meta' },
        h('span', {}, bytes(hit.size)), ' · ',
        h('span', { dataset: { field: 'holders' } }, holderCount(holders.length, hit.sources_total)), ' · ',
        h('code', { title: hit.id }, shortId(hit.id))),
      details);
  }
}
