// The client of the daemon's local API (/api/v1): sends the session's CSRF
// token with every request that changes something, turns error answers into
// ApiError (whose message is the daemon's sentence for people), and notices
// when the web UI session has ended. Owns the CSRF token.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Thrown by every call once the session is known to have ended. */
export class SessionEnded extends Error {
  constructor() {
    super('Your web UI session ended; run `peershare ui` for a fresh login link');
    this.name = 'SessionEnded';
    this.sessionEnded = true;
  }
}

let csrfToken = null;
let ended = false;
const endListeners = new Set();

/** Calls `fn` once if the session ends. */
export function onSessionEnded(fn) {
  endListeners.add(fn);
}

function sessionEnded() {
  if (ended) return;
  ended = true;
  for (const fn of endListeners) fn();
}

export function hasEnded() {
  return ended;
}

/** Loads this page's session (and its CSRF token); returns the session view. */
export async function startSession() {
  const session = await request('GET', '/ui/session', { checkSession: false });
  csrfToken = session.csrf_token;
  return session;
}

function url(path, params) {
  const full = path.startsWith('/api/') || path.startsWith('/logout') ? path : `/api/v1${path}`;
  if (!params) return full;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${full}?${text}` : full;
}

async function request(method, path, { params, body, checkSession = true } = {}) {
  if (ended) throw new SessionEnded();
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken || '';
    headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch {
    throw new ApiError(0, 'unreachable', 'The daemon did not answer. Is `peershare up` still running?');
  }
  if (response.status === 401) {
    // A 401 can also be the index refusing a password: ask whether the UI session itself is gone.
    if (!checkSession || await sessionIsGone()) {
      sessionEnded();
      throw new SessionEnded();
    }
  }
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('application/json')) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (data && typeof data.message === 'string') throw new ApiError(response.status, data.code || 'error', data.message);
    throw new ApiError(response.status, 'http', `The daemon answered ${response.status} ${response.statusText}`.trim());
  }
  return data;
}

async function sessionIsGone() {
  try {
    const check = await fetch('/api/v1/ui/session', { credentials: 'same-origin', cache: 'no-store' });
    return check.status === 401;
  } catch {
    return false;
  }
}

/** Re-checks the session (after the events stream was refused); true when it ended. */
export async function checkSession() {
  if (ended) return true;
  if (await sessionIsGone()) {
    sessionEnded();
    return true;
  }
  return false;
}

export const get = (path, params) => request('GET', path, { params });
export const post = (path, body, params) => request('POST', path, { body, params });
export const del = (path) => request('DELETE', path);

/** Ends this browser's web UI session and goes to the login page. */
export async function logoutUi() {
  const response = await fetch('/logout', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': csrfToken || '', 'Content-Type': 'application/json' },
  }).catch(() => null);
  if (!response) throw new ApiError(0, 'unreachable', 'The daemon did not answer. Is `peershare up` still running?');
  if (!response.ok && response.status !== 401) {
    let message = `The daemon answered ${response.status}`;
    try {
      message = (await response.json()).message || message;
    } catch { /* keep the status line */ }
    throw new ApiError(response.status, 'logout', message);
  }
  ended = true;
  window.location.assign('/login');
}

/** Encodes one path segment (a user name, a chat). */
export const seg = (text) => encodeURIComponent(text);
