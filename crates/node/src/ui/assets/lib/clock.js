// One local clock tick per second for things that count down or age on
// screen (ETA, "next try in", "seen 3 minutes ago", request expiry). It never
// asks the daemon anything: live data comes from the events stream.
// Owns the single interval timer.

const subscribers = new Set();
let timer = null;

/** Calls `fn(nowMs)` every second until the returned function is called. */
export function everySecond(fn) {
  subscribers.add(fn);
  if (!timer) {
    timer = setInterval(() => {
      const now = Date.now();
      for (const f of [...subscribers]) f(now);
    }, 1000);
  }
  return () => {
    subscribers.delete(fn);
    if (subscribers.size === 0) {
      clearInterval(timer);
      timer = null;
    }
  };
}
