// Paging of long lists on the page itself: only one page of rows is in the
// DOM at a time, with "Previous" / "Next" buttons and "41–90 of 1,234".
// Owns nothing beyond the pager it returns.

import { h } from './dom.js';

/**
 * A pager over `items` rendered `size` at a time by `render(pageItems, offset)`.
 * Returns {el, set(items, keepPage), page()}.
 */
export function pager(label, size, render) {
  let items = [];
  let page = 0;
  const summary = h('p', { class: 'pager-summary', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button' }, 'Previous');
  const next = h('button', { type: 'button' }, 'Next');
  const el = h('nav', { class: 'pager', 'aria-label': label, hidden: true }, prev, summary, next);
  const nf = new Intl.NumberFormat();

  function draw() {
    const pages = Math.max(1, Math.ceil(items.length / size));
    page = Math.min(page, pages - 1);
    const start = page * size;
    const slice = items.slice(start, start + size);
    render(slice, start);
    el.hidden = items.length <= size;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    summary.textContent = items.length
      ? `${nf.format(start + 1)}–${nf.format(start + slice.length)} of ${nf.format(items.length)}`
      : '';
  }

  prev.addEventListener('click', () => { page -= 1; draw(); });
  next.addEventListener('click', () => { page += 1; draw(); });

  return {
    el,
    set(list, keepPage = false) {
      items = list;
      if (!keepPage) page = 0;
      draw();
    },
    page: () => page,
  };
}
