// DOM helpers shared by every page: building elements without innerHTML
// (so nothing from the network is ever parsed as markup), alert regions for
// errors next to where the person acted, and buttons that show they are busy.
// Owns no state.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'open', 'indeterminate', 'max', 'readOnly', 'required']);

/**
 * Builds an element: h('button', {class: 'x', onClick: fn, 'aria-label': 'y'}, 'text', child…).
 * Keys: `class`, `text`, `dataset` (object), `onXxx` (listeners), DOM properties
 * (value, checked, disabled, hidden…), anything else as an attribute.
 * Children: nodes, strings, numbers, arrays; null/undefined/false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false && !PROPERTIES.has(key)) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && key.length > 2 && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, arrays; falsy ones skipped) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A fresh id for label/aria links. */
export function newId(prefix = 'id') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A <label> + <input> pair inside a wrapper div; returns {wrap, input}. */
export function field(labelText, inputProps = {}, hint) {
  const id = inputProps.id || newId('f');
  const input = h(inputProps.tag || 'input', { ...inputProps, tag: undefined, id });
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, labelText), input, hintEl);
  return { wrap, input };
}

/**
 * An alert region shown next to where the person acts: hidden while empty.
 * show(error | text) shows an error; info(text) a calm note; clear() hides it.
 */
export function alertRegion(extraClass = '') {
  const el = h('p', { class: ['alert', extraClass], role: 'alert', hidden: true });
  return {
    el,
    show(error) {
      el.classList.remove('info');
      el.classList.add('error');
      el.textContent = messageOf(error);
      el.hidden = false;
    },
    info(text) {
      el.classList.remove('error');
      el.classList.add('info');
      el.textContent = text;
      el.hidden = false;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}

/** A person-readable sentence for any thrown value. */
export function messageOf(error) {
  if (!error) return 'Something went wrong.';
  if (typeof error === 'string') return error;
  if (error.message) return error.message;
  return String(error);
}

/**
 * Runs `action` with `button` disabled and marked busy; errors go to `alert`
 * (an alertRegion) when given, and are returned as {error} instead of thrown.
 */
export async function busy(button, action, alert) {
  const buttons = Array.isArray(button) ? button : [button];
  for (const b of buttons) if (b) { b.disabled = true; b.setAttribute('aria-busy', 'true'); }
  alert?.clear();
  try {
    return await action();
  } catch (error) {
    if (error?.sessionEnded) return { error };
    if (alert) alert.show(error);
    else console.warn(messageOf(error));
    return { error };
  } finally {
    for (const b of buttons) if (b) { b.disabled = false; b.removeAttribute('aria-busy'); }
  }
}

/** Says `text` to screen readers through the page's polite announcer. */
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  // A fresh text node after a tick makes repeated sentences announced again.
  setTimeout(() => { el.textContent = text; }, 50);
}

/** A small empty-state paragraph. */
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/** Copies `text` to the clipboard; falls back to selecting it in `input`. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
    }
    return false;
  }
}

/** Debounces `fn` by `ms` milliseconds (for reloads after bursts of events). */
export function debounce(fn, ms = 300) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}
