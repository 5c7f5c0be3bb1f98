// Formatting for people: sizes and rates in KiB/MiB/GiB, durations, dates
// and relative times in the person's locale, shortened peer and file ids.
// Pure functions, no state.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const number = (digits) => new Intl.NumberFormat(undefined, { maximumFractionDigits: digits });

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '–';
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${number(digits).format(value)} ${UNITS[unit]}`;
}

/** Bytes per second → "1.2 MiB/s"; 0 → "–" unless `zero` is given. */
export function rate(n, zero = '–') {
  if (!n) return zero;
  return `${bytes(n)}/s`;
}

/** A whole percentage of done/total, as a number 0–100. */
export function percent(done, total) {
  if (!total) return done > 0 ? 100 : 0;
  return Math.min(100, Math.floor((done / total) * 100));
}

/** Seconds → "2 h 5 min", "3 min 20 s", "45 s". */
export function duration(secs) {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return '–';
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** Milliseconds since the epoch → a date and time in the person's locale. */
export function date(ms) {
  if (!ms) return '–';
  return dateTime.format(new Date(ms));
}

/** Today's times show the time only; older ones the date too. */
export function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

/** An ISO string for <time datetime>. */
export function iso(ms) {
  return ms ? new Date(ms).toISOString() : '';
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** Milliseconds since the epoch → "3 minutes ago" / "in 20 seconds". */
export function relative(ms, now = Date.now()) {
  if (!ms) return '–';
  const diff = (ms - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return relativeFormat.format(Math.round(diff), 'second');
  if (abs < 45 * 60) return relativeFormat.format(Math.round(diff / 60), 'minute');
  if (abs < 36 * 3600) return relativeFormat.format(Math.round(diff / 3600), 'hour');
  return relativeFormat.format(Math.round(diff / 86400), 'day');
}

/** "12D3KooWAbC…xyz9": enough to tell peers apart. */
export function shortPeer(id) {
  if (!id) return '';
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

const CONNECTION = { direct: 'direct', hole_punched: 'hole-punched', relayed: 'relayed' };

/** A connection's path → "direct", "hole-punched", "relayed via 12D3KooW…a1b2c3". */
export function connectionPath(connection, relay) {
  if (!connection) return '–';
  const name = CONNECTION[connection] || connection;
  return relay ? `${name} via ${shortPeer(relay)}` : name;
}

/** A transfer's data path → "hole-punched, data connection", "relayed via …, stream". */
export function dataPath(path) {
  if (!path) return '–';
  const channel = path.channel === 'tcp' ? 'data connection' : 'stream';
  return `${connectionPath(path.connection, path.relay)}, ${channel}`;
}

/** A file id's first 12 hex digits. */
export function shortId(id) {
  if (!id) return '';
  return id.length > 16 ? `${id.slice(0, 12)}…` : id;
}

/** A holder or source's name for people: its user name, else its short peer id. */
export function who(user, peerId) {
  return user || shortPeer(peerId);
}

/** Where a holder was found, in words. */
export function originLabel(origin) {
  return { index: 'index', dht: 'DHT', lan: 'LAN' }[origin] || origin;
}

/** "1 file" / "3 files". */
export function plural(n, one, many = `${one}s`) {
  return `${number(0).format(n)} ${n === 1 ? one : many}`;
}

/** The index membership state in a word or two (header badge, settings). */
export function indexStateLabel(state, user) {
  switch (state) {
    case 'joined': return user ? `joined as ${user}` : 'joined';
    case 'logged_out': return 'logged out';
    case 'joining': return 'joining…';
    case 'unreachable': return 'index unreachable';
    case 'refused': return 'refused';
    case 'offline': return 'offline';
    default: return String(state).replace(/_/g, ' ');
  }
}
