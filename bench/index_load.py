#!/usr/bin/env python3
"""Load generator for bench/index.sh (Python 3.11 standard library plus the
`cryptography` package for ed25519 join signatures).

    index_load.py URL STORE INDEX_PID

Fills a running index through its HTTP API (register, login, challenge,
signed join, heartbeats), then measures searches over HTTP at several
concurrency levels and the same queries on the raw search structure loaded
from STORE (index.db, or a PostgreSQL URL), the baseline. With INDEX2_URL
and INDEX2_PID set (a second index process on the same PostgreSQL), it
also waits for the second one to list what the fill joined, and searches
each kind with the clients split over both. Settings come from the
environment (see bench/index.sh). Only talks to loopback URLs.
"""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from benchlib import cpu_seconds, env_float, env_int, status_kib


PEERS = env_int("PEERS", 1000)
FILES = env_int("FILES", 1000)
USERS = env_int("USERS", max(1, PEERS // 10))
JOIN_CLIENTS = env_int("JOIN_CLIENTS", 16)
HEARTBEATS = env_int("HEARTBEATS", max(1000, PEERS * 5))
DURATION = env_float("DURATION", 8.0)          # seconds per (query kind, concurrency)
GRACE = env_float("GRACE", 10.0)               # extra seconds for in-flight requests
MAX_REQUESTS = env_int("MAX_REQUESTS", 400000)  # per (query kind, concurrency)
RAW_DURATION = env_float("RAW_DURATION", DURATION / 2)
LEVELS = [int(x) for x in os.environ.get("LEVELS", "1,64,1000").split(",") if x]
PEER_TIMEOUT_S = env_int("PEER_TIMEOUT", 86400)
SEED = env_int("SEED", 1)
PASSWORD = "bench-password-1"


# ---------------------------------------------------------------- tiny HTTP/1.1 client


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port, source=None):
        self.host, self.port, self.source = host, port, source
        self.reader = self.writer = None

    async def open(self):
        for attempt in range(50):
            try:
                local = (self.source, 0) if self.source else None
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                         local_addr=local)
                return self
            except OSError:
                await asyncio.sleep(0.05 * (attempt + 1))
        raise ConnectionError("cannot connect to the index")

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, body=None, token=None):
        if self.writer is None:
            await self.open()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        if len(data) > 65536:
            await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            self.close()
            raise ConnectionError("the index closed the connection")
        status = int(line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            key, value = key.strip().lower(), value.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif key == "connection" and value == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            payload = b"".join(parts)
        elif length:
            payload = await self.reader.readexactly(length)
        else:
            payload = b""
        if close:
            self.close()
        return status, payload


async def expect(conn, method, path, body=None, token=None, ok=(200,)):
    status, payload = await conn.request(method, path, body, token)
    if status not in ok:
        raise RuntimeError(f"{method} {path} -> {status}: {payload[:300]!r}")
    return json.loads(payload) if payload else None


async def run_pool(items, clients, work, host, port):
    """Runs `work(conn, item)` for every item with `clients` connections."""
    queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker():
        conn = await Conn(host, port).open()
        try:
            while not queue.empty():
                await work(conn, queue.get_nowait())
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(clients)))


# ---------------------------------------------------------------- libp2p ed25519 identities

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data):
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


class Identity:
    """An ed25519 key with its libp2p protobuf public key and peer id."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # PublicKey { Type = Ed25519 (1), Data = 32 bytes }
        self.protobuf = b"\x08\x01\x12\x20" + raw
        # identity multihash (code 0) of the protobuf key, base58btc
        self.peer_id = base58(b"\x00" + bytes([len(self.protobuf)]) + self.protobuf)

    def sign(self, message):
        return self.key.sign(message.encode()).hex()


# ---------------------------------------------------------------- realistic file names

FIRST = ("Anna Bruno Carla Diego Elena Felipe Gloria Hugo Irene Jonas Karin Luca Marta Nico "
         "Olga Pedro Rita Sven Tomas Ulla Vera Walter Yara Zeno").split()
LAST = ("Almeida Berg Costa Duarte Eriksen Ferraz Gomez Hansen Iglesias Jensen Klein Lopes "
        "Moreau Nunes Olsen Pereira Quinn Ramos Silva Torres Varga Weber Young Zanetti").split()
TITLE = ("love night summer river blue morning dance heart city rain fire golden dream "
         "midnight ocean shadow light road home wild silver winter echo paper stone sky "
         "garden train letter window storm island mirror velvet thunder harbor lantern "
         "compass meadow canyon feather glacier horizon").split()
SUBJECT = ("calculus algebra physics chemistry biology history economics statistics "
           "programming databases networks philosophy literature geography astronomy "
           "genetics linguistics robotics architecture psychology").split()
TOPIC = ("introduction limits derivatives integrals vectors matrices entropy thermodynamics "
         "evolution cells markets inflation regression sorting graphs recursion transactions "
         "indexing routing ethics poetry climate galaxies proteins syntax kinematics "
         "optimization probability").split()
SHOW = ("Dark Harbor|Silent Valley|The Last Orbit|Blue Lanterns|Northern Line|Paper Kings|"
        "Iron Meadow|Glass Cities|The Quiet Room|Red Canyon|Winter Court|Salt and Stone").split("|")
PLACE = "lisbon porto berlin paris rome madrid oslo prague vienna dublin tokyo lima".split()
DOC = "report invoice manual thesis slides notes contract budget minutes summary".split()
DISTRO = "debian ubuntu fedora arch alpine mint opensuse rocky".split()

KIND_EXT = [("mp3", 30), ("flac", 6), ("mp4", 18), ("mkv", 12), ("jpg", 18), ("pdf", 12), ("iso", 4)]


def make_name(rng):
    ext = rng.choices([e for e, _ in KIND_EXT], [w for _, w in KIND_EXT])[0]
    if ext in ("mp3", "flac"):
        artist = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        title = " ".join(rng.choice(TITLE) for _ in range(rng.randint(1, 3))).title()
        extra = rng.choice(["", "", "", " (Live)", " (Remastered)", " (Acoustic)"])
        return f"{artist} - {title}{extra}.{ext}"
    if ext == "mp4":
        return (f"{rng.choice(SUBJECT).title()} Lecture {rng.randint(1, 40):02d} - "
                f"{rng.choice(TOPIC).title()}.mp4")
    if ext == "mkv":
        return (f"{rng.choice(SHOW)} S{rng.randint(1, 8):02d}E{rng.randint(1, 24):02d} "
                f"{rng.choice(['720p', '1080p', '2160p'])}.mkv")
    if ext == "jpg":
        return f"IMG_{rng.randint(1, 99999):05d} {rng.choice(PLACE)} {rng.randint(2005, 2026)}.jpg"
    if ext == "pdf":
        return f"{rng.choice(TOPIC)} {rng.choice(DOC)} {rng.randint(2010, 2026)}.pdf"
    return f"{rng.choice(DISTRO)}-{rng.randint(9, 42)}.{rng.randint(0, 9)}-amd64.iso"


def make_file(rng):
    return {"name": make_name(rng), "size": rng.randint(10_000, 4_000_000_000),
            "id": "%064x" % rng.getrandbits(256)}


# A pool of popular files that many peers share (same id and name), so
# results have several sources.
POPULAR = [make_file(random.Random(SEED * 7919 + i)) for i in range(5000)]


def peer_files(index):
    rng = random.Random(SEED * 1_000_003 + index)
    files = []
    for _ in range(FILES):
        files.append(rng.choice(POPULAR) if rng.random() < 0.2 else make_file(rng))
    return files


# ---------------------------------------------------------------- statistics


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * (len(sorted_values) - 1)))))
    return sorted_values[k]


def say(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------- fill


async def fill(host, port, state):
    users = [f"bench-user-{i:04d}" for i in range(USERS)]
    tokens = {}

    async def register(conn, name):
        await expect(conn, "POST", "/api/v1/users", {"name": name, "password": PASSWORD}, ok=(201,))

    async def login(conn, name):
        s = await expect(conn, "POST", "/api/v1/sessions", {"name": name, "password": PASSWORD}, ok=(201,))
        tokens[name] = s["token"]

    t = time.perf_counter()
    await run_pool(users, 4, register, host, port)
    dt = time.perf_counter() - t
    say(f"register   {USERS:>8} users    {dt:8.2f} s  {USERS / dt:10.1f} /s   (argon2)")
    t = time.perf_counter()
    await run_pool(users, 4, login, host, port)
    dt = time.perf_counter() - t
    say(f"login      {USERS:>8} users    {dt:8.2f} s  {USERS / dt:10.1f} /s   (argon2)")

    t = time.perf_counter()
    identities = [Identity() for _ in range(PEERS)]
    say(f"keys       {PEERS:>8} ed25519  {time.perf_counter() - t:8.2f} s  (client side, not timed below)")
    peers = [(identities[i], users[i % USERS]) for i in range(PEERS)]
    # Each peer's file list, written before the clock starts as the keys
    # are: making and encoding 1,000 names took this client ~10 ms a join,
    # near half a core at the rates measured, on the cores the index runs on.
    t = time.perf_counter()
    bodies = [json.dumps({
        "peer_id": ident.peer_id,
        "addrs": [f"/ip4/127.0.0.1/tcp/{20000 + index}"],
        "public_key": ident.protobuf.hex(),
        "signature": "",
        "files": peer_files(index),
    }) for index, (ident, _) in enumerate(peers)]
    say(f"lists      {PEERS:>8} peers    {time.perf_counter() - t:8.2f} s  (client side, not timed below)")
    joined_files = [0]
    join_lat = []

    async def join(conn, item):
        index, (ident, user) = item
        token = tokens[user]
        body = bodies[index]
        bodies[index] = None
        start = time.perf_counter()
        ch = await expect(conn, "POST", "/api/v1/peers/challenge", {"peer_id": ident.peer_id},
                          token, ok=(201,))
        body = body.replace('"signature": ""', f'"signature": "{ident.sign(ch["message"])}"', 1)
        joined = await expect(conn, "POST", "/api/v1/peers", body.encode(), token)
        join_lat.append(time.perf_counter() - start)
        joined_files[0] += joined["files"]

    t = time.perf_counter()
    cpu = cpu_of(state["pids"])
    await run_pool(list(enumerate(peers)), JOIN_CLIENTS, join, host, port)
    dt = time.perf_counter() - t
    cpu = cpu_of(state["pids"]) - cpu if cpu is not None else float("nan")
    join_lat.sort()
    say(f"join       {PEERS:>8} peers    {dt:8.2f} s  {PEERS / dt:10.1f} joins/s  "
        f"{joined_files[0] / dt:10.0f} files/s  ({joined_files[0]} file rows, {JOIN_CLIENTS} clients, "
        f"challenge+join p50 {pct(join_lat, 50) * 1000:.0f} ms p99 {pct(join_lat, 99) * 1000:.0f} ms; "
        f"index CPU {cpu / dt:.2f} cores, {cpu * 1e6 / max(1, joined_files[0]):.1f} us a file)")
    state["files_rows"] = joined_files[0]

    beats = [peers[i % PEERS] for i in range(HEARTBEATS)]
    beat_lat = []

    async def heartbeat(conn, item):
        ident, user = item
        start = time.perf_counter()
        await expect(conn, "POST", f"/api/v1/peers/{ident.peer_id}/heartbeat", None, tokens[user],
                     ok=(204,))
        beat_lat.append(time.perf_counter() - start)

    t = time.perf_counter()
    await run_pool(beats, 64, heartbeat, host, port)
    dt = time.perf_counter() - t
    beat_lat.sort()
    say(f"heartbeat  {HEARTBEATS:>8} beats    {dt:8.2f} s  {HEARTBEATS / dt:10.1f} /s   (64 clients, "
        f"p50 {pct(beat_lat, 50) * 1000:.1f} ms p99 {pct(beat_lat, 99) * 1000:.1f} ms)")
    state["token"] = tokens[users[0]]
    state["tokens"] = [tokens[u] for u in users]


# ---------------------------------------------------------------- queries


def build_queries():
    """Query kinds: name -> list of (q, mode, ext)."""
    rng = random.Random(SEED + 99)
    sample = [make_name(rng) for _ in range(400)]
    words_sel, exact, substring = [], [], []
    # names that really are shared: popular and unique ones from a few peers
    for index in range(0, PEERS, max(1, PEERS // 10)):
        for f in peer_files(index)[:10]:
            exact.append((f["name"], "exact", None))
    rng.shuffle(exact)
    for name in sample:
        stem = name.rsplit(".", 1)[0]
        tokens = [w for w in stem.replace("-", " ").replace("(", " ").replace(")", " ").split() if w.isalpha()]
        if len(tokens) >= 2:
            words_sel.append((" ".join(rng.sample(tokens, 2)), "words", None))
        if len(stem) > 10:
            start = rng.randint(0, len(stem) - 8)
            substring.append((stem[start:start + 7], "substring", None))
    broad = [(w, "words", None) for w in ("lecture", "live", "1080p", "lisbon", "summer", "report")]
    with_ext = [(w, "words", e) for w, e in (("love", "flac"), ("calculus", "mp4"), ("notes", "pdf"),
                                            ("harbor", "mkv"), ("porto", "jpg"), ("debian", "iso"))]
    return {
        "exact": exact[:100],
        "words (2 words)": words_sel[:100],
        "words+ext": with_ext,
        "words (1 common)": broad,
        "substring": substring[:100],
    }


def search_path(q, mode, ext):
    params = {"q": q, "mode": mode}
    if ext:
        params["ext"] = ext
    return "/api/v1/search?" + urllib.parse.urlencode(params)


def client_source(i):
    """Client i's own loopback address (127.0.x.y), as many people have many
    addresses: the index limits connections and searches per address."""
    n = i + 2
    return f"127.0.{n // 250}.{n % 250 + 1}"


async def http_level(targets, tokens, queries, clients):
    """Searches for DURATION seconds with `clients` connections, each from
    its own address and logged in as one of the users (round robin), as
    people searching at once would be; connection i goes to index
    targets[i % len(targets)] ((host, port) pairs). Sent by search_load
    (one Rust thread) unless LOAD=python."""
    paths = [search_path(*q) for q in queries]
    if os.environ.get("LOAD", "rust") != "python":
        return rust_level(targets, tokens, paths, clients)
    conns = await asyncio.gather(*(Conn(*targets[i % len(targets)], client_source(i)).open()
                                   for i in range(clients)))
    latencies, errors, shed, sent = [], [0], [0], [0]
    deadline = [0.0]
    rng = random.Random(clients)

    async def client(i, conn):
        k = i
        while time.perf_counter() < deadline[0] and sent[0] < MAX_REQUESTS:
            sent[0] += 1
            path = paths[k % len(paths)]
            k += clients
            start = time.perf_counter()
            try:
                status, _ = await conn.request("GET", path, token=tokens[i % len(tokens)])
                if status == 503:
                    # Turned away: wait as told (Retry-After, 1 s), with jitter, like a polite client.
                    shed[0] += 1
                    await asyncio.sleep(rng.uniform(1.0, 2.0))
                    continue
                if status != 200:
                    errors[0] += 1
                    continue
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                errors[0] += 1
                conn.close()
                continue
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    deadline[0] = start + DURATION
    tasks = [asyncio.ensure_future(client(i, c)) for i, c in enumerate(conns)]
    done, pending = await asyncio.wait(tasks, timeout=DURATION + GRACE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    latencies.sort()
    return {"n": len(latencies), "rps": len(latencies) / elapsed, "errors": errors[0], "shed": shed[0],
            "unfinished": len(pending), "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "max_wait": DURATION + GRACE}


def rust_level(targets, tokens, paths, clients):
    """http_level by crates/index/examples/search_load.rs, which reports the
    same figures."""
    plan = os.path.join(os.environ["BENCH_DATA"], "search-plan.json")
    with open(plan, "w") as f:
        json.dump({"targets": [list(t) for t in targets], "tokens": tokens, "paths": paths,
                   "clients": clients, "duration": DURATION, "grace": GRACE,
                   "max_requests": MAX_REQUESTS}, f)
    out = subprocess.run([os.environ["SEARCH_LOAD"], plan], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


class RawBaseline:
    """The same queries on the raw search structure (crates/index/examples/
    raw_search.rs: the catalogue and text index loaded from the store, no
    HTTP, one thread), RAW_DURATION seconds a measure. The structure is
    loaded once and measures one kind on request, so each kind's baseline
    is taken right before and right after that kind's levels: this
    machine's speed drifts by up to 2x within minutes."""

    def __init__(self, store, kinds):
        queries = os.path.join(os.environ["BENCH_DATA"], "bench-queries.json")
        with open(queries, "w") as f:
            json.dump({k: [list(q) for q in v] for k, v in kinds.items()}, f)
        self.proc = subprocess.Popen(
            [os.environ["RAW_SEARCH"], store, queries, str(RAW_DURATION), str(MAX_REQUESTS),
             "--on-request"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.loaded = self._answer()

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"raw_search stopped (exit status {self.proc.wait()})")
        return json.loads(line)

    def measure(self, kind):
        self.proc.stdin.write(kind + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def between(before, after):
    """The baseline a kind's levels are divided by: the mean of the raw
    measures taken before and after them."""
    return {"n": before["n"] + after["n"],
            **{k: (before[k] + after[k]) / 2 for k in ("qps", "p50", "p99")}}


def ms(v):
    return f"{v * 1000:9.2f}"


async def wait_idle(host, port, token, probe):
    """Waits until the index answers a cheap search within 50 ms (work of
    cancelled clients drained), at most 60 s."""
    conn = await Conn(host, port).open()
    try:
        until = time.perf_counter() + 60
        while time.perf_counter() < until:
            t = time.perf_counter()
            await conn.request("GET", probe, token=token)
            if time.perf_counter() - t < 0.05:
                return
            await asyncio.sleep(0.5)
    finally:
        conn.close()


def cpu_of(pids):
    """CPU seconds used so far by all of `pids`, or None."""
    used = [cpu_seconds(p) for p in pids]
    return None if None in used else sum(used)


async def wait_quiet(pids, limit=900):
    """Waits until `pids` use under 5 % of a core for 5 s in a row (the text
    index's merges after a fill done, its small segments merged once it has
    been idle 3 s), at most `limit` s; returns the wait."""
    start = time.perf_counter()
    quiet, used = 0, cpu_of(pids)
    while quiet < 5 and time.perf_counter() - start < limit and used is not None:
        await asyncio.sleep(1)
        now = cpu_of(pids)
        quiet = quiet + 1 if now is not None and now - used < 0.05 else 0
        used = now
    return time.perf_counter() - start


async def search_level(targets, pids, token, tokens, queries, clients, probe):
    """One level after the indexes are idle; adds `cpu_ms`, the indexes' CPU
    per answered search (this load generator shares the cores, so req/s
    alone mixes both)."""
    for target in targets:
        await wait_idle(*target, token, probe)
    cpu_before = cpu_of(pids)
    r = await http_level(targets, tokens, queries, clients)
    cpu_after = cpu_of(pids)
    r["cpu_ms"] = ((cpu_after - cpu_before) * 1000 / r["n"]
                   if None not in (cpu_before, cpu_after) and r["n"] else float("nan"))
    return r


def level_row(kind, label, r, base):
    r50 = r["p50"] / base["p50"] if base["p50"] > 0 else float("nan")
    r99 = r["p99"] / base["p99"] if base["p99"] > 0 else float("nan")
    # wall time per answered search vs one raw query on one thread
    cost = base["qps"] / r["rps"] if r["rps"] > 0 else float("inf")
    say(f"{kind:<18} {label:>7} {r['n']:>9} {r['rps']:9.1f} {ms(r['p50'])} {ms(r['p99'])} "
        f"{r['errors']:>6} {r['shed']:>6} {r['unfinished']:>5} {r50:8.2f} {r99:8.2f} {cost:8.2f} "
        f"{r['cpu_ms']:8.2f}")


def raw_row(kind, label, raw):
    say(f"{kind:<18} {label:>7} {raw['n']:>9} {raw['qps']:9.1f} {ms(raw['p50'])} "
        f"{ms(raw['p99'])}")


async def search_bench(target, store, token, tokens, pid, second):
    kinds = build_queries()
    raw = RawBaseline(store, kinds)
    probe = search_path(*kinds["exact"][0])
    say("")
    say(f"raw structure loaded from the store in {raw.loaded['load_secs']:.1f} s "
        f"(its merges done {raw.loaded['settle_secs']:.0f} s later)")
    say("matching file ids per query (min / median / max of up to 20 queries; estimates past a page):")
    for kind in kinds:
        lo, mid, hi = raw.loaded["totals"][kind]
        say(f"  {kind:<18} {lo:>8} {mid:>8} {hi:>8}")
    say("")
    say("p50/raw, p99/raw: index latency over the raw query's; cost/raw: wall time per answered")
    say("search (1 / req/s) over the raw query's (1 / qps); unfin: requests cancelled after the grace;")
    say("shed: answered 503 Retry-After (the client then waits 1-2 s); latencies are of answered searches;")
    say("cpu ms: the index's CPU time per answered search (this load generator shares the cores)")
    say(f"search: {DURATION:g} s per level (+{GRACE:g} s grace), default page (50); raw = same "
        f"query on the search structure in-process, 1 thread, {RAW_DURATION:g} s, measured right")
    say("before (raw) and right after (raw') the kind's levels, which are divided by their mean;")
    say("drift: raw' req/s over raw's (the machine's speed moves by up to 2x within minutes)")
    say(f"{'kind':<18} {'clients':>7} {'requests':>9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'errors':>6} {'shed':>6} {'unfin':>5} {'p50/raw':>8} {'p99/raw':>8} {'cost/raw':>8} "
        f"{'cpu ms':>8}")
    summary = []
    for kind, queries in kinds.items():
        before = raw.measure(kind)
        rows = []
        for clients in LEVELS:
            r = await search_level([target], [pid], token, tokens, queries, clients, probe)
            rows.append((str(clients), r))
        if second:
            # Both processes, the clients split over them: "pair" rows.
            clients = max(LEVELS)
            r = await search_level([target, second[0]], [pid, second[1]], token, tokens, queries,
                                   clients, probe)
            rows.append((f"2x{clients // 2}", r))
        after = raw.measure(kind)
        base = between(before, after)
        raw_row(kind, "raw", before)
        for label, r in rows:
            level_row(kind, label, r, base)
            summary.append((kind, label, r, base))
        raw_row(kind, "raw'", after)
        say(f"{'':<18} {'':>7} drift {after['qps'] / before['qps']:.2f}; "
            f"index VmHWM so far: {vm_hwm(pid)}")
    raw.close()
    return summary


def vm_hwm(pid):
    kib = status_kib(pid, "VmHWM")
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def loopback(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("index_load.py only talks to a loopback index")
    return parsed.hostname, parsed.port


async def listings(target):
    conn = await Conn(*target).open()
    try:
        status, body = await conn.request("GET", "/api/v1/stats")
        return json.loads(body)["listings"] if status == 200 else None
    finally:
        conn.close()


async def wait_caught_up(first, second):
    """Waits (at most 10 minutes) until the second index lists as many files
    as the first (both count every 5 s) and says how long it took."""
    t = time.perf_counter()
    want = await listings(first)
    while time.perf_counter() - t < 600:
        have = await listings(second)
        if have == want:
            say(f"second index lists the same {have} listings {time.perf_counter() - t:.1f} s after "
                f"the fill (both count every 5 s)")
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the second index lists {have} listings, the first {want}")


async def main():
    url, store, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = loopback(url)
    second = None
    if os.environ.get("INDEX2_URL"):
        second = (loopback(os.environ["INDEX2_URL"]), int(os.environ["INDEX2_PID"]))
    say(f"peers {PEERS}, files per peer {FILES}, users {USERS}, heartbeats {HEARTBEATS}, "
        f"levels {LEVELS}, {os.cpu_count()} cores")
    state = {"pids": [pid] + ([second[1]] if second else [])}
    t = time.perf_counter()
    await fill(host, port, state)
    stored = ""
    if os.path.exists(store):
        wal = store + "-wal"
        stored = (f"; index.db {os.path.getsize(store) / 2**20:.0f} MiB "
                  f"(+ WAL {os.path.getsize(wal) / 2**20 if os.path.exists(wal) else 0:.0f} MiB)")
    say(f"fill total {time.perf_counter() - t:.1f} s; index VmHWM after fill: {vm_hwm(pid)}{stored}")
    if second:
        await wait_caught_up((host, port), second[0])
    say(f"index quiet (merges after the fill done) {await wait_quiet(state['pids']):.0f} s later")
    await search_bench((host, port), store, state["token"], state["tokens"], pid, second)
    say("")
    say(f"index peak RSS (VmHWM): {vm_hwm(pid)}")
    if second:
        say(f"second index peak RSS (VmHWM): {vm_hwm(second[1])}")


if __name__ == "__main__":
    asyncio.run(main())
