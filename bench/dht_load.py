#!/usr/bin/env python3
"""Driver for bench/dht.sh (Python 3 standard library only).

    dht_load.py BIN WORK_DIR

Starts NODES `peershare up` daemons on 127.0.0.1 (no index, no mDNS), each
sharing one small file with a unique random word in its name, joined into
one DHT through `--bootstrap`. Then, from SEARCHERS nodes that are never
killed, searches by that word for the files of QUERIES random nodes, and
browses the same holders directly by their full address (the baseline);
kills 10 %, 30 % and 50 % of the nodes (SIGKILL, never a searcher) and
measures again after each step, and once more after SETTLE seconds.
Settings come from the environment (see bench/dht.sh).

Every daemon is started here, in its own session, and only those are ever
signalled; their pids are kept in WORK_DIR/daemons.pids so that dht.sh can
stop them if this process itself is killed.
"""

import json
import math
import os
import random
import signal
import statistics
import string
import subprocess
import sys
import time

from benchlib import env_float, env_int, status_kib


NODES = env_int("NODES", 200)
SEARCHERS = env_int("SEARCHERS", 10)
QUERIES = env_int("QUERIES", 100)
BATCH = env_int("BATCH", 10)
KILLS = [int(x) for x in os.environ.get("KILLS", "10,30,50").split(",") if x]
SETTLE = env_float("SETTLE", 20.0)
FORM_CHECKS = env_int("FORM_CHECKS", 5)
FORM_DEADLINE = env_float("FORM_DEADLINE", 60.0)
READY_DEADLINE = env_float("READY_DEADLINE", 60.0)
CLI_TIMEOUT = env_float("CLI_TIMEOUT", 60.0)
FILE_BYTES = env_int("FILE_BYTES", 400)
SEED = env_int("SEED", 1)
SHOW_FAILURES = env_int("SHOW_FAILURES", 3)
UP_ARGS = os.environ.get("UP_ARGS", "").split()
RECORDS = os.environ.get("RECORDS", "")  # a file to append every search's record to (JSON lines)

BIN = sys.argv[1]
WORK = sys.argv[2]
PID_FILE = os.path.join(WORK, "daemons.pids")

# The client and the daemons see no inherited settings that could point them elsewhere.
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith("PEERSHARE_") or k == "PEERSHARE_LOG"}
ENV["NO_COLOR"] = "1"

rng = random.Random(SEED)


class Node:
    def __init__(self, i):
        self.i = i
        self.base = os.path.join(WORK, f"n{i}")
        self.data = os.path.join(self.base, "data")
        self.share = os.path.join(self.base, "share")
        self.dl = os.path.join(self.base, "dl")
        self.log = os.path.join(WORK, "logs", f"n{i}.log")
        self.word = ""
        self.name = ""
        self.proc = None
        self.peer_id = ""
        self.addr = ""
        self.bootstrap = None
        self.dead = False

    def cli(self, *args):
        """Runs a client command; returns (seconds, exit code, first JSON value or None, stderr)."""
        cmd = [BIN, "--data-dir", self.data, "--json", *args]
        t0 = time.perf_counter()
        try:
            out = subprocess.run(cmd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            return time.perf_counter() - t0, -1, None, f"client timed out after {CLI_TIMEOUT} s"
        elapsed = time.perf_counter() - t0
        value = None
        for line in out.stdout.splitlines():
            line = line.strip()
            if line:
                try:
                    value = json.loads(line)
                    break
                except ValueError:
                    continue
        return elapsed, out.returncode, value, out.stderr.strip()

    def log_tail(self, n=20):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.readlines()[-n:]
        except OSError as e:
            return [f"(no log: {e})\n"]


def write_pids(nodes):
    tmp = PID_FILE + ".tmp"
    with open(tmp, "w") as f:
        for n in nodes:
            if n.proc is not None and n.proc.returncode is None:
                f.write(f"{n.proc.pid}\n")
    os.replace(tmp, PID_FILE)


def pct(values, p):
    """The p-th percentile (nearest rank) of values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def fmt(x, digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def unique_words(count):
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(string.ascii_lowercase) for _ in range(8)))
    out = sorted(words)
    rng.shuffle(out)
    return out


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


# ---------------------------------------------------------------- start


def start(node):
    for d in (node.data, node.share, node.dl):
        os.makedirs(d, exist_ok=True)
    cmd = [BIN, "up", "--data-dir", node.data, "--share", node.share, "--downloads", node.dl,
           "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-index", "--no-mdns",
           # Hundreds of daemons under one user would exhaust inotify; shares never change here.
           "--no-watch"]
    if node.bootstrap is not None:
        cmd += ["--bootstrap", node.bootstrap.addr]
    cmd += UP_ARGS
    log = open(node.log, "ab")
    node.proc = subprocess.Popen(cmd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=log, start_new_session=True)
    log.close()


def wait_ready(batch, nodes):
    """Waits until every node of the batch answers `status` with an address and its one file."""
    deadline = time.monotonic() + READY_DEADLINE
    waiting = list(batch)
    while waiting:
        still = []
        for node in waiting:
            if node.proc.poll() is not None:
                sys.stdout.write("".join(node.log_tail(30)))
                raise RuntimeError(f"node {node.i} exited during start ({node.proc.returncode})")
            if not os.path.exists(os.path.join(node.data, "api.addr")):
                still.append(node)
                continue
            _, rc, st, _ = node.cli("status")
            addrs = (st or {}).get("addrs") or []
            if rc != 0 or not addrs or st.get("shared_files") != 1:
                still.append(node)
                continue
            node.peer_id = st["peer_id"]
            node.addr = addrs[0]
            if "/p2p/" not in node.addr:
                node.addr = f"{node.addr}/p2p/{node.peer_id}"
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                n = waiting[0]
                sys.stdout.write("".join(n.log_tail(30)))
                raise RuntimeError(f"{len(waiting)} node(s) not ready after {READY_DEADLINE} s, "
                                   f"node {n.i} among them")
            time.sleep(0.05)
    write_pids(nodes)


def start_all(nodes):
    words = unique_words(len(nodes))
    for node, word in zip(nodes, words):
        node.word = word
        node.name = f"dht bench {node.i} {word}.bin"
        os.makedirs(node.share, exist_ok=True)
        with open(os.path.join(node.share, node.name), "wb") as f:
            f.write(os.urandom(FILE_BYTES))
    t0 = time.monotonic()
    start(nodes[0])
    wait_ready([nodes[0]], nodes)
    ready = [nodes[0]]
    pos = 1
    while pos < len(nodes):
        batch = nodes[pos:pos + BATCH]
        for node in batch:
            # Each node joins through one node that was already up (not always the first).
            node.bootstrap = rng.choice(ready)
            start(node)
        wait_ready(batch, nodes)
        ready.extend(batch)
        pos += len(batch)
        if pos % 50 < BATCH or pos == len(nodes):
            print(f"  {pos}/{len(nodes)} nodes up ({time.monotonic() - t0:.1f} s)", flush=True)
    return time.monotonic() - t0


# ---------------------------------------------------------------- measure


def search(searcher, target):
    """One DHT search by the target's unique word; returns a record."""
    wall, rc, v, err = searcher.cli("search", target.word)
    rec = {"searcher": searcher.i, "target": target.i, "wall": wall * 1000, "ok": False,
           "found": False, "rc": rc, "error": err, "stats": None, "holders": []}
    if rc != 0 or not isinstance(v, dict):
        rec["error"] = err or f"exit {rc}, output {v!r}"
        return rec
    dht = (v.get("origins") or {}).get("dht") or {}
    rec["ok"] = bool(dht.get("ok"))
    rec["stats"] = dht.get("stats")
    if dht.get("error"):
        rec["error"] = dht["error"]
    for hit in v.get("results") or []:
        if target.name in (hit.get("names") or []):
            rec["holders"] = [s.get("peer_id") for s in hit.get("sources") or []]
    rec["found"] = target.peer_id in rec["holders"]
    return rec


def browse(searcher, target):
    """The baseline: browse the holder at its known full address; returns (ms, listed)."""
    wall, rc, v, _ = searcher.cli("browse", target.addr)
    files = (v or {}).get("files") if isinstance(v, dict) else None
    listed = rc == 0 and any(f.get("name") == target.name for f in files or [])
    return wall * 1000, listed


def pairs_for(searchers, alive, count):
    """(searcher, target) pairs: distinct live targets (other than the searcher), round-robin searchers."""
    targets = list(alive)
    rng.shuffle(targets)
    out = []
    k = 0
    while len(out) < count and targets:
        s = searchers[k % len(searchers)]
        k += 1
        pick = next((t for t in targets if t is not s), None)
        if pick is None:
            break
        targets.remove(pick)
        out.append((s, pick))
        if not targets:  # fewer live nodes than queries: go round again
            targets = list(alive)
            rng.shuffle(targets)
    return out


def wait_formed(searchers, alive):
    """Until FORM_CHECKS searches for random files succeed (each retried), or the deadline."""
    t0 = time.monotonic()
    pending = pairs_for(searchers, alive, FORM_CHECKS)
    rounds = 0
    while pending:
        rounds += 1
        pending = [(s, t) for (s, t) in pending if not search(s, t)["found"]]
        if pending:
            if time.monotonic() - t0 > FORM_DEADLINE:
                s, t = pending[0]
                print(f"  warning: {len(pending)} of {FORM_CHECKS} check searches still fail after "
                      f"{FORM_DEADLINE:.0f} s (e.g. node {s.i} looking for node {t.i}); measuring anyway")
                break
            time.sleep(1.0)
    return time.monotonic() - t0, rounds, len(pending)


def show_failure(rec, nodes):
    s, t = nodes[rec["searcher"]], nodes[rec["target"]]
    st = rec["stats"] or {}
    print(f"    NOT FOUND: node {s.i} searching \"{t.word}\" (file of node {t.i}, {t.peer_id}); "
          f"dht ok={rec['ok']} error={rec['error']!r} stats={json.dumps(st, sort_keys=True)} "
          f"holders={rec['holders']}")
    print(f"    node {t.i} bootstrapped through node "
          f"{t.bootstrap.i} ({'dead' if t.bootstrap.dead else 'alive'})" if t.bootstrap else
          f"    node {t.i} is the first node (no bootstrap)")
    for who, n in (("searcher", s), ("target", t)):
        print(f"    --- tail of {who} node {n.i}'s log ({n.log}):")
        for line in n.log_tail(6):
            print("      " + line.rstrip())


def measure(label, searchers, alive, nodes):
    """QUERIES searches and as many baseline browses; returns a summary row."""
    t0 = time.monotonic()
    recs = []
    base = []
    for k, (s, t) in enumerate(pairs_for(searchers, alive, QUERIES)):
        # Alternate the order so that neither side always finds the connection
        # the other one just opened.
        if k % 2 == 0:
            rec = search(s, t)
            b_ms, listed = browse(s, t)
        else:
            b_ms, listed = browse(s, t)
            rec = search(s, t)
        rec["search_first"] = k % 2 == 0
        rec["browse"] = b_ms
        rec["listed"] = listed
        recs.append(rec)
        base.append(b_ms)
    took = time.monotonic() - t0
    if RECORDS:
        with open(RECORDS, "a") as f:
            for r in recs:
                f.write(json.dumps({"step": label, "alive": len(alive), **r}, sort_keys=True) + "\n")
    failures = [r for r in recs if not r["found"]]
    shown = 0
    if failures and SHOW_FAILURES and "PEERSHARE_LOG" not in ENV:
        print("    (the daemons log no DHT detail by default; PEERSHARE_LOG=info,libp2p_kad=debug adds some)")
    for r in failures:
        if shown < SHOW_FAILURES:
            show_failure(r, nodes)
            shown += 1
    if len(failures) > shown:
        print(f"    ... and {len(failures) - shown} more not found: "
              + ", ".join(f"{r['searcher']}->{r['target']}" for r in failures[shown:]))
    stats = [r["stats"] for r in recs if r["stats"]]
    ms = [st["ms"] for st in stats]
    lookup_ms = [st["lookup_ms"] for st in stats]
    req_per_lookup = [st["lookup_requests"] / st["words"] for st in stats if st.get("words")]
    wall = [r["wall"] for r in recs]
    found = sum(1 for r in recs if r["found"])
    row = {
        "label": label,
        "alive": len(alive),
        "queries": len(recs),
        "found": found,
        "found_pct": 100.0 * found / len(recs) if recs else float("nan"),
        "no_provider": sum(1 for st in stats if st.get("providers") == 0),
        "skipped": sum(st.get("skipped", 0) for st in stats),
        "listed": sum(1 for r in recs if r["listed"]),
        "ms": ms, "wall": wall, "lookup_ms": lookup_ms, "req": req_per_lookup, "browse": base,
        "took": took,
    }
    row["ratio"] = statistics.median(wall) / statistics.median(base) if wall and base else float("nan")
    row["paired"] = statistics.median(r["wall"] / r["browse"] for r in recs) if recs else float("nan")
    print(f"  {label}: {row['alive']} alive, {found}/{len(recs)} found ({fmt(row['found_pct'], 1)} %), "
          f"baseline listed {row['listed']}/{len(recs)}; took {took:.1f} s")
    print(f"    DHT search in daemon (stats.ms)  p50 {fmt(pct(ms, 50))}  p90 {fmt(pct(ms, 90))}  "
          f"max {fmt(max(ms) if ms else None)} ms")
    print(f"    DHT search, CLI wall time        p50 {fmt(pct(wall, 50))}  p90 {fmt(pct(wall, 90))}  "
          f"max {fmt(max(wall) if wall else None)} ms")
    print(f"    word lookup (lookup_ms)          p50 {fmt(pct(lookup_ms, 50))}  "
          f"p90 {fmt(pct(lookup_ms, 90))}  max {fmt(max(lookup_ms) if lookup_ms else None)} ms")
    print(f"    Kademlia requests/lookup         p50 {fmt(pct(req_per_lookup, 50))}  "
          f"p90 {fmt(pct(req_per_lookup, 90))}  max {fmt(max(req_per_lookup) if req_per_lookup else None)}")
    print(f"    baseline browse, CLI wall time   p50 {fmt(pct(base, 50))}  p90 {fmt(pct(base, 90))}  "
          f"max {fmt(max(base) if base else None)} ms")
    print(f"    ratio search/browse (p50 wall)   {fmt(row['ratio'], 2)}   "
          f"(median of per-query ratios {fmt(row['paired'], 2)})")
    first = [r for r in recs if r["search_first"]]
    second = [r for r in recs if not r["search_first"]]
    print(f"    p50 wall, run first / second:    search {fmt(pct([r['wall'] for r in first], 50))} / "
          f"{fmt(pct([r['wall'] for r in second], 50))} ms, browse "
          f"{fmt(pct([r['browse'] for r in second], 50))} / {fmt(pct([r['browse'] for r in first], 50))} ms")
    print(f"    no provider record found: {row['no_provider']}; dead or failing providers skipped: "
          f"{row['skipped']}")
    quarter = max(1, math.ceil(len(nodes) / 4))
    parts = []
    for q in range(4):
        lo, hi = q * quarter, min(len(nodes), (q + 1) * quarter)
        these = [r for r in recs if lo <= r["target"] < hi]
        parts.append(f"{lo}-{hi - 1}: {sum(1 for r in these if r['found'])}/{len(these)}")
    print("    found by the target's start order (node numbers): " + ", ".join(parts), flush=True)
    return row


def kill_to(percent, nodes, searchers):
    """Kills (SIGKILL) random non-searcher nodes until `percent` of all nodes are dead."""
    want = math.ceil(len(nodes) * percent / 100)
    dead = sum(1 for n in nodes if n.dead)
    candidates = [n for n in nodes if not n.dead and n not in searchers]
    victims = rng.sample(candidates, max(0, min(len(candidates), want - dead)))
    for n in victims:
        n.proc.send_signal(signal.SIGKILL)
    for n in victims:
        n.proc.wait()
        n.dead = True
    write_pids(nodes)
    return victims


def stop_all(nodes, graceful=True):
    running = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    sig = signal.SIGTERM if graceful else signal.SIGKILL
    for n in running:
        try:
            n.proc.send_signal(sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for n in running:
        try:
            n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()
    write_pids(nodes)


def main():
    os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
    if SEARCHERS >= NODES:
        raise SystemExit("SEARCHERS must be smaller than NODES")
    nodes = [Node(i) for i in range(NODES)]
    t_run = time.monotonic()
    ok = False
    try:
        print(f"starting {NODES} nodes in batches of {BATCH} "
              f"(each joins through a random node already up) ...", flush=True)
        startup = start_all(nodes)
        rss = [r for r in (rss_kib(n.proc.pid) for n in nodes) if r]
        print(f"all {NODES} nodes up in {startup:.1f} s; RSS per daemon p50 "
              f"{statistics.median(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB, "
              f"total {sum(rss) / 1048576:.2f} GiB", flush=True)

        searchers = rng.sample(nodes, SEARCHERS)
        print(f"searchers (never killed): nodes {', '.join(str(s.i) for s in sorted(searchers, key=lambda n: n.i))}")
        formed, rounds, unformed = wait_formed(searchers, nodes)
        if unformed:
            print(f"DHT not formed: {unformed} of {FORM_CHECKS} check searches still fail after "
                  f"{formed:.1f} s ({rounds} rounds)", flush=True)
        else:
            print(f"DHT formed: {FORM_CHECKS} check searches found their files after {formed:.1f} s "
                  f"({rounds} round(s))", flush=True)
        floor = sorted(searchers[k % SEARCHERS].cli("status")[0] * 1000 for k in range(20))
        print(f"client floor (`status` CLI wall time) p50 {statistics.median(floor):.1f} ms", flush=True)

        rows = []
        print(f"\nmeasuring: {QUERIES} searches from {SEARCHERS} searchers per step, "
              "each followed or preceded by a direct browse of the same holder", flush=True)
        rows.append(measure("0 % killed", searchers, [n for n in nodes if not n.dead], nodes))
        for p in KILLS:
            victims = kill_to(p, nodes, searchers)
            dead = sum(1 for n in nodes if n.dead)
            print(f"\nkilled {len(victims)} more nodes (SIGKILL): {dead}/{NODES} dead; searching at once",
                  flush=True)
            print("  killed: nodes " + ", ".join(str(n.i) for n in sorted(victims, key=lambda n: n.i)))
            rows.append(measure(f"{p} % killed", searchers, [n for n in nodes if not n.dead], nodes))
        if SETTLE > 0 and KILLS:
            print(f"\nwaiting {SETTLE:.0f} s ...", flush=True)
            time.sleep(SETTLE)
            rows.append(measure(f"{KILLS[-1]} % +{SETTLE:.0f}s", searchers,
                                [n for n in nodes if not n.dead], nodes))

        print()
        print(f"peershare DHT benchmark: {NODES} nodes on 127.0.0.1, {SEARCHERS} searchers, "
              f"{QUERIES} searches per step, {os.cpu_count()} cores, seed {SEED}"
              + (f", up args: {' '.join(UP_ARGS)}" if UP_ARGS else ""))
        print(f"startup {startup:.1f} s, "
              + (f"check searches gave up {formed:.1f} s later ({unformed}/{FORM_CHECKS} failing); "
                 if unformed else f"DHT formed {formed:.1f} s later; ")
              + f"client floor (status) p50 {statistics.median(floor):.1f} ms")
        print("search = `peershare search WORD` (one word, one provider lookup); "
              "browse = `peershare browse FULL_ADDR` of the same holder (baseline)")
        print("ms: stats.ms (in the daemon); wall: CLI wall time; lookup: lookup_ms; "
              "req/lk: Kademlia requests per lookup (not hops); ratio: p50 search wall / p50 browse wall")
        head = (f"{'step':<13}{'alive':>6}{'found':>9}{'found%':>8}"
                f"{'ms p50':>8}{'p90':>6}{'max':>6}"
                f"{'wall p50':>10}{'p90':>6}{'max':>6}"
                f"{'lookup p50':>11}{'p90':>6}"
                f"{'req/lk p50':>11}{'max':>5}"
                f"{'browse p50':>11}{'ratio':>7}")
        print(head)
        for r in rows:
            print(f"{r['label']:<13}{r['alive']:>6}{str(r['found']) + '/' + str(r['queries']):>9}"
                  f"{fmt(r['found_pct'], 1):>8}"
                  f"{fmt(pct(r['ms'], 50)):>8}{fmt(pct(r['ms'], 90)):>6}{fmt(max(r['ms']) if r['ms'] else None):>6}"
                  f"{fmt(pct(r['wall'], 50)):>10}{fmt(pct(r['wall'], 90)):>6}{fmt(max(r['wall'])):>6}"
                  f"{fmt(pct(r['lookup_ms'], 50)):>11}{fmt(pct(r['lookup_ms'], 90)):>6}"
                  f"{fmt(pct(r['req'], 50)):>11}{fmt(max(r['req']) if r['req'] else None):>5}"
                  f"{fmt(pct(r['browse'], 50)):>11}{fmt(r['ratio'], 2):>7}")
        at30 = next((r for r in rows if r["label"] == "30 % killed"), None)
        first = rows[0]
        print("goal: >= 99 % found after 30 % loss: "
              + (f"{fmt(at30['found_pct'], 1)} % ({'met' if at30['found_pct'] >= 99 else 'NOT met'})"
                 if at30 else "(no 30 % step)")
              + f"; median search < 1 s on loopback: {fmt(pct(first['wall'], 50))} ms wall, "
              f"{fmt(pct(first['ms'], 50))} ms in the daemon "
              f"({'met' if pct(first['wall'], 50) < 1000 else 'NOT met'})")
        print(f"whole run {time.monotonic() - t_run:.0f} s")
        ok = True
    finally:
        stop_all(nodes, graceful=ok)
    return 0


def on_term(signum, frame):
    # Once is enough: the daemons are being stopped.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sys.exit(main())
