#!/usr/bin/env python3
"""Driver of bench/soak.sh (Python 3.11 standard library plus `cryptography`).

    soak_load.py BIN TMPDIR

Runs a real `peershare index` (BIN, data in TMPDIR/index, one loopback
port for its whole life), DAEMONS real `peershare up` daemons joined to it,
and PEERS simulated peers that, for DURATION seconds, join with a file list,
send heartbeats, search (words, substring, exact), browse, publish,
unpublish, leave and rejoin over the index's HTTP API, while a killer
SIGKILLs at random intervals the index (started again at once on the same
port and data folder), a daemon (started again) or a batch of simulated
peers (which stop without leaving).

The ledger: what the index acknowledged must hold. The index commits every
write to SQLite (WAL) before it answers, and keeps nothing that matters in
memory only (sessions, peers with their last heartbeat time, files are all
rows; the token cache and the login counters are caches), so a SIGKILL may
lose nothing it answered:
  - an account whose registration was answered 201 logs in, and a token
    whose login was answered 201 keeps working, after any number of kills;
  - a peer whose last answered join or heartbeat was sent less than
    PEER_TIMEOUT - MARGIN seconds ago is online: every file of its last
    answered join plus its answered publishes minus its answered unpublishes
    is found by an exact search (and listed by browsing its user), and an
    unpublished file is not;
  - a peer whose leave was answered is not found; nor is a killed peer
    PEER_TIMEOUT + KILL_SLACK seconds after the last request it sent.
A write that got no answer (connection refused or dropped, a timeout, a 5xx
other than 503) leaves the peer "uncertain": it is not checked until it has
retried the write and got an answer.

Every SAMPLE_EVERY seconds it samples VmRSS and open descriptors of the index
and of each daemon, and the requests and errors of the interval; at the end
it prints the growth per process incarnation and the error and ledger
counts, and exits 1 on a ledger violation, a 5xx outside restarts or a
process growing past RSS_SLOPE_MAX / FD_SLOPE_MAX.
Only talks to 127.0.0.0/8; only signals the processes it started.
"""

import asyncio
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

from benchlib import env_float, env_int, fd_count, least_squares_slope, status_kib
from index_load import Conn, Identity, make_name

DURATION = env_float("DURATION", 1800.0)
PEERS = env_int("PEERS", 1000)
USERS = env_int("USERS", max(1, PEERS // 10))
DAEMONS = env_int("DAEMONS", 3)
HEARTBEAT = env_int("HEARTBEAT", 20)
PEER_TIMEOUT = env_int("PEER_TIMEOUT", 60)
ACTION_EVERY = env_float("ACTION_EVERY", 15.0)
CONNS = env_int("CONNS", 48)
HEARTBEAT_CONNS = env_int("HEARTBEAT_CONNS", 16)
SOURCES = env_int("SOURCES", 8)
KILL_MIN = env_float("KILL_MIN", 60.0)
KILL_MAX = env_float("KILL_MAX", 180.0)
KILL_BATCH = env_int("KILL_BATCH", 25)
WARMUP = env_float("WARMUP", 120.0)
RESTART_WARMUP = env_float("RESTART_WARMUP", 60.0)
SAMPLE_EVERY = env_float("SAMPLE_EVERY", 10.0)
RSS_SLOPE_MAX = env_float("RSS_SLOPE_MAX", 8.0)   # MiB per 10 min
FD_SLOPE_MAX = env_float("FD_SLOPE_MAX", 10.0)    # descriptors per 10 min
MIN_FIT = env_float("MIN_FIT", 300.0)
# Growth a process may show whatever its slope: the index's SQLite page caches
# (64 MiB for the writer, 16 MiB for each of 4 readers: crates/index/src/store.rs)
# fill as the database grows, which is bounded and not a leak.
INDEX_RSS_ALLOWANCE = env_float("INDEX_RSS_ALLOWANCE", 128.0)    # MiB
DAEMON_RSS_ALLOWANCE = env_float("DAEMON_RSS_ALLOWANCE", 16.0)  # MiB
FAULT = os.environ.get("FAULT", "")   # "phantom": the ledger gets a file never published (self-test)
SAMPLES = os.environ.get("SAMPLES", "")
KILL_TARGETS = [t for t in os.environ.get("KILL_TARGETS", "index,daemon,peers").split(",") if t]
SEED = env_int("SEED", 1)

INITIAL_FILES = (5, 20)      # files in a new peer's first join
REQUEST_TIMEOUT = 45.0       # above the index's 30 s wait for a join slot
MARGIN = 10.0                # a peer counts as surely online this long before its timeout
KILL_SLACK = 20.0            # extra seconds before a killed peer must be gone
RECHECK_AFTER = 2 * HEARTBEAT  # seconds after an index restart before the sampled check
CHECK_SAMPLE = 100           # peers checked after each index restart
PASSWORD = "soak-password-1"
DAEMON_FILES = 4

rng = random.Random(SEED)


def say(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# ---------------------------------------------------------------- counters


class Stats:
    """Requests answered and failed, by operation and kind, in total and per interval."""

    def __init__(self):
        self.answers = collections.Counter()      # (op, status)
        self.errors = collections.Counter()       # (kind, "restart"|"running")
        self.interval_requests = 0
        self.interval_errors = collections.Counter()
        self.total = 0
        self.violations = collections.Counter()
        self.examples = collections.defaultdict(list)
        self.checked = collections.Counter()
        self.skipped = collections.Counter()

    def answer(self, op, status):
        self.total += 1
        self.interval_requests += 1
        self.answers[(op, status)] += 1
        if status == 503:
            self.error("503 busy (Retry-After)")
        elif status >= 500:
            self.error(f"{status} server error")

    def error(self, kind):
        when = "restart" if world.restarting() else "running"
        self.errors[(kind, when)] += 1
        self.interval_errors[kind] += 1

    def violation(self, kind, detail):
        self.violations[kind] += 1
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(detail)
        say(f"LEDGER VIOLATION {kind}: {detail}")


stats = Stats()


# ---------------------------------------------------------------- processes


class World:
    """The processes under test and the index's restart windows."""

    def __init__(self, bin_path, tmp):
        self.bin, self.tmp = bin_path, tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.index = None
        self.index_incarnation = 0
        self.index_started = 0.0
        self.epoch = 0                 # bumped at each index start: older connections are dead
        self.down_since = None
        self.windows = []              # (killed at, answering again at)
        self.daemons = []
        self.stopping = False
        self.stop = asyncio.Event()    # set with `stopping`: wakes the sleeping peers
        self.started = time.time()
        self.kills = collections.Counter()

    def restarting(self):
        now = time.time()
        if self.down_since is not None:
            return True
        return any(a <= now <= b + 2.0 for a, b in self.windows[-3:])

    def write_pids(self):
        pids = [p.pid for p in [self.index] + [d.proc for d in self.daemons] if p is not None]
        with open(os.path.join(self.tmp, "soak.pids"), "w") as f:
            f.write("".join(f"{pid}\n" for pid in pids))

    async def start_index(self):
        data = os.path.join(self.tmp, "index")
        os.makedirs(data, exist_ok=True)
        out = os.path.join(self.tmp, f"index.{self.index_incarnation + 1}.out")
        with open(out, "w") as stdout, open(os.path.join(self.tmp, "index.log"), "a") as log:
            self.index = subprocess.Popen(
                [self.bin, "--json", "index", "--listen", f"127.0.0.1:{self.port}",
                 "--index-data-dir", data, "--heartbeat", str(HEARTBEAT),
                 "--peer-timeout", str(PEER_TIMEOUT), "--registrations-per-minute", "0"],
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=log, env=child_env())
        self.write_pids()
        self.index_incarnation += 1
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.index.poll() is not None:
                raise SystemExit(f"the index exited ({self.index.returncode}); see {self.tmp}/index.log")
            if os.path.getsize(out) > 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("the index printed no address within 60 s")
        self.index_started = time.time()
        self.epoch += 1

    async def kill_index(self):
        self.down_since = time.time()
        self.index.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.index.wait)
        await self.start_index()
        self.windows.append((self.down_since, time.time()))
        self.down_since = None
        return self.windows[-1][1] - self.windows[-1][0]

    def stop_all(self):
        procs = [self.index] + [d.proc for d in self.daemons]
        for p in procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        for p in procs:
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()


def child_env():
    env = dict(os.environ)
    for name in ("PEERSHARE_API", "PEERSHARE_DATA_DIR", "PEERSHARE_INDEX"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    env.setdefault("RUST_LOG", "warn")
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A real `peershare up` joined to the index, sharing DAEMON_FILES small files."""

    def __init__(self, number):
        self.number = number
        self.name = f"soak-daemon-{number}"
        base = os.path.join(world.tmp, self.name)
        self.data, self.share, self.downloads = (os.path.join(base, d) for d in ("data", "share", "downloads"))
        for d in (self.data, self.share, self.downloads):
            os.makedirs(d, exist_ok=True)
        self.log = os.path.join(base, "daemon.log")
        self.files = []
        for k in range(DAEMON_FILES):
            name = f"soak daemon {number} file {k} {rng.choice(['alpha', 'bravo', 'delta'])}.bin"
            with open(os.path.join(self.share, name), "wb") as f:
                f.write(os.urandom(rng.randint(1000, 64_000)))
            self.files.append(name)
        self.proc = None
        self.incarnation = 0
        self.peer_id = None
        self.restarting = False   # killed by the killer, not crashed

    async def start(self):
        try:
            os.remove(os.path.join(self.data, "api.addr"))
        except FileNotFoundError:
            pass
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [world.bin, "up", "--data-dir", self.data, "--share", self.share,
                 "--downloads", self.downloads, "--api", "127.0.0.1:0",
                 "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-watch", "--index", world.url],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=child_env())
        world.write_pids()
        self.incarnation += 1
        self.started = time.time()
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon {self.name} exited ({self.proc.returncode}); see {self.log}")
            if os.path.exists(os.path.join(self.data, "api.addr")):
                ok, status = await self.cli(["status"])
                if ok:
                    self.peer_id = status["peer_id"]
                    return
            await asyncio.sleep(0.2)
        raise SystemExit(f"daemon {self.name} did not come up within 120 s; see {self.log}")

    async def cli(self, args, stdin=None):
        proc = await asyncio.create_subprocess_exec(
            world.bin, "--data-dir", self.data, "--json", *args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
        try:
            out, _ = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return False, None
        try:
            value = json.loads(out.decode().splitlines()[0]) if out.strip() else None
        except (ValueError, IndexError):
            value = None
        return proc.returncode == 0, value

    async def wait_joined(self, within):
        """True once `status` says joined with every file published."""
        deadline = time.time() + within
        while time.time() < deadline:
            ok, status = await self.cli(["status"])
            index = (status or {}).get("index") or {}
            if ok and index.get("state") == "joined" and index.get("published_files") == DAEMON_FILES:
                return True
            await asyncio.sleep(1.0)
        return False

    async def kill(self):
        self.restarting = True
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)
        await self.start()
        self.restarting = False


# ---------------------------------------------------------------- HTTP


class Unanswered(Exception):
    """The index gave no answer (refused, dropped, timed out)."""


class SourceConn(Conn):
    """A keep-alive connection from one loopback source address."""

    def __init__(self, host, port, source):
        super().__init__(host, port)
        self.source, self.epoch, self.used = source, 0, 0.0

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, local_addr=(self.source, 0))
        return self


class Pool:
    """At most `size` connections per source address; every request is counted."""

    def __init__(self, sources, size):
        self.queues = {}
        for src in sources:
            q = asyncio.Queue()
            for _ in range(max(1, size)):
                q.put_nowait(SourceConn("127.0.0.1", world.port, src))
            self.queues[src] = q

    async def call(self, src, op, method, path, body=None, token=None):
        q = self.queues[src]
        conn = await q.get()
        try:
            # Connections to a killed index are dead, and the index closes
            # connections idle for 60 s: open a new one rather than count an error.
            if conn.epoch != world.epoch or time.time() - conn.used > 50:
                conn.close()
                conn.epoch = world.epoch
            conn.used = time.time()
            try:
                return await asyncio.wait_for(conn.request(method, path, body, token), REQUEST_TIMEOUT)
            except ConnectionRefusedError:
                kind = "connection refused"
            except asyncio.TimeoutError:
                kind = "timeout"
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                kind = "connection dropped"
            conn.close()
            stats.error(kind)
            raise Unanswered(kind)
        except asyncio.CancelledError:
            conn.close()
            raise
        finally:
            q.put_nowait(conn)


async def call(pool, src, op, method, path, body=None, token=None):
    status, payload = await pool.call(src, op, method, path, body, token)
    stats.answer(op, status)
    return status, payload


def decode(payload):
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None


# ---------------------------------------------------------------- accounts


class User:
    def __init__(self, name, src):
        self.name, self.src = name, src
        self.token = None
        self.registered = False   # answered 201 (or 409 on a retry of our own registration)
        self.tried = False        # an earlier try went unanswered

    async def register(self, pool):
        while True:
            try:
                status, payload = await call(pool, self.src, "register", "POST", "/api/v1/users",
                                             {"name": self.name, "password": PASSWORD})
            except Unanswered:
                # It may have been written: a 409 on the retry is then our own account.
                self.tried = True
                await asyncio.sleep(1.0)
                continue
            if status == 201 or (status == 409 and self.tried):
                self.registered = True
                return
            if status in (429, 503):
                await asyncio.sleep(1.0)
                continue
            raise SystemExit(f"register {self.name} -> {status}: {payload[:200]!r}")

    async def login(self, pool, check=False):
        """Logs in; returns the status (201, 401, ...)."""
        while True:
            try:
                status, payload = await call(pool, self.src, "login", "POST", "/api/v1/sessions",
                                             {"name": self.name, "password": PASSWORD})
            except Unanswered:
                await asyncio.sleep(1.0)
                continue
            if status in (429, 503):
                await asyncio.sleep(1.0)
                continue
            if status == 201:
                token = decode(payload)["token"]
                if not check or self.token is None:
                    self.token = token
            return status


# ---------------------------------------------------------------- simulated peers

WORDS = ("love night summer river blue morning dance heart city rain fire golden dream "
         "midnight ocean shadow light road home wild lecture lisbon porto report").split()


class Peer:
    """One simulated peer and its ledger: what the index acknowledged."""

    def __init__(self, number, user):
        self.number, self.user = number, user
        self.generation = 0
        self.lock = asyncio.Lock()
        self.task = None
        self.fresh()

    def fresh(self):
        """A new install: new key, new files, never joined."""
        self.generation += 1
        self.ident = Identity()
        self.serial = 0
        self.files = {}            # id -> name: what the index must list while online
        for _ in range(rng.randint(*INITIAL_FILES)):
            self.new_file()
        self.gone = collections.deque(maxlen=5)   # (id, name) unpublished, answered
        self.state = "new"         # new | online | left
        self.uncertain = False     # a write went unanswered: not checked until it is retried
        self.pending = None        # the unanswered write to retry
        self.last_ok = 0.0         # send time of the last answered join or heartbeat
        self.last_sent = 0.0       # send time of the last request of any kind
        self.rejoin_at = 0.0
        self.killed = False        # stopped by the killer: checked as a ghost, not here
        self.next_beat = 0.0
        self.next_action = time.time() + rng.uniform(0, ACTION_EVERY)

    def new_file(self):
        self.serial += 1
        name = f"soak{self.number:04d}g{self.generation}f{self.serial:04d} {make_name(rng)}"
        file_id = "%064x" % rng.getrandbits(256)
        entry = {"name": name, "size": rng.randint(1, 10**9), "id": file_id}
        self.files[file_id] = name
        return entry

    def entries(self, ids):
        return [{"name": self.files[i], "size": 1000, "id": i} for i in ids]

    async def req(self, op, method, path, body=None, pool=None):
        self.last_sent = time.time()
        return await call(pool or work_pool, self.user.src, op, method, path, body, self.user.token)

    def unexpected(self, op, status, payload):
        """An answer the ledger says cannot happen."""
        if status == 401:
            stats.violation("token no longer accepted", f"{self.user.name} {op}")
        elif status in (404, 409) and op in ("heartbeat", "publish", "unpublish"):
            stats.violation(f"{op} refused {status} after an answered join",
                            f"peer {self.number} {self.ident.peer_id[:16]} {payload[:120]!r}")
        else:
            stats.error(f"unexpected {status} on {op}")
        # Whatever happened, join again to get back to a known state.
        self.pending = ("join",)
        self.uncertain = True

    async def run(self):
        while not world.stopping:
            now = time.time()
            if self.pending:
                at = now + rng.uniform(1.0, 3.0)
            elif self.state in ("new", "left"):
                at = max(self.rejoin_at, now)
            else:
                at = min(self.next_beat, self.next_action)
            if at > now:
                try:
                    await asyncio.wait_for(world.stop.wait(), at - now)
                except asyncio.TimeoutError:
                    pass
            if world.stopping:
                return
            async with self.lock:
                try:
                    await self.step()
                except Unanswered:
                    pass

    async def step(self):
        now = time.time()
        if self.pending:
            await self.retry()
        elif self.state in ("new", "left"):
            await self.join()
        elif now >= self.next_beat:
            await self.heartbeat()
        else:
            self.next_action = now + rng.expovariate(1.0 / ACTION_EVERY)
            await self.act()

    async def join(self):
        self.pending = ("join",)
        sent = time.time()
        status, payload = await self.req("challenge", "POST", "/api/v1/peers/challenge",
                                         {"peer_id": self.ident.peer_id})
        if status != 201:
            if status == 503:
                return
            return self.unexpected("challenge", status, payload)
        message = decode(payload)["message"]
        body = {"peer_id": self.ident.peer_id,
                "addrs": [f"/ip4/127.0.0.1/tcp/{20000 + self.number}"],
                "public_key": self.ident.protobuf.hex(), "signature": self.ident.sign(message),
                "files": self.entries(list(self.files))}
        # Unanswered from here on: the join may or may not have happened.
        self.uncertain = True
        status, payload = await self.req("join", "POST", "/api/v1/peers", body)
        if status == 200:
            self.state, self.pending, self.uncertain = "online", None, False
            if FAULT == "phantom" and self.number % 100 == 0:
                # Self-test: a file the index never heard of; the checks must flag it.
                self.new_file()
            self.last_ok = sent
            self.next_beat = time.time() + HEARTBEAT * rng.uniform(0.8, 1.0)
        elif status != 503:
            self.unexpected("join", status, payload)

    async def heartbeat(self):
        sent = time.time()
        self.next_beat = sent + 2.0   # soon again if this one gets no answer
        status, payload = await self.req("heartbeat", "POST",
                                         f"/api/v1/peers/{self.ident.peer_id}/heartbeat", pool=beat_pool)
        if status == 204:
            self.last_ok = sent
            self.next_beat = sent + HEARTBEAT * rng.uniform(0.8, 1.0)
        elif status != 503:
            self.unexpected("heartbeat", status, payload)

    async def retry(self):
        kind = self.pending[0]
        if kind == "join":
            return await self.join()
        if kind == "publish":
            return await self.publish(self.pending[1])
        if kind == "unpublish":
            return await self.unpublish(self.pending[1], retry=True)
        if kind == "leave":
            return await self.leave()

    async def act(self):
        r = rng.random()
        if r < 0.45:
            await self.search()
        elif r < 0.55:
            await self.browse()
        elif r < 0.75:
            await self.publish([self.new_file() for _ in range(rng.randint(1, 3))])
        elif r < 0.88:
            if len(self.files) > 2:
                await self.unpublish(rng.choice(list(self.files)))
        elif r < 0.95:
            await self.leave()
        else:
            # as a restarted daemon does: join again with the whole list
            await self.join()

    async def search(self):
        other = rng.choice(peers)
        names = list(other.files.values()) or ["summer"]
        name = rng.choice(names)
        mode = rng.choice(["words", "words", "substring", "exact"])
        if mode == "words":
            words = [w for w in name.replace("-", " ").split() if w.isalpha()]
            q = " ".join(rng.sample(words, min(len(words), rng.randint(1, 2)))) if words else rng.choice(WORDS)
        elif mode == "substring":
            start = rng.randint(0, max(0, len(name) - 8))
            q = name[start:start + 7]
        else:
            q = name
        path = "/api/v1/search?" + urllib.parse.urlencode({"q": q, "mode": mode})
        status, payload = await self.req(f"search {mode}", "GET", path)
        if status not in (200, 503):
            self.unexpected("search", status, payload)

    async def browse(self):
        other = rng.choice(users)
        status, payload = await self.req("browse", "GET", f"/api/v1/users/{other.name}/files")
        if status not in (200, 503):
            self.unexpected("browse", status, payload)

    async def publish(self, entries):
        self.pending, self.uncertain = ("publish", entries), True
        status, payload = await self.req("publish", "POST", f"/api/v1/peers/{self.ident.peer_id}/files",
                                         {"files": entries})
        if status == 200:
            self.pending, self.uncertain = None, False
        elif status == 503:
            # Turned away before anything was written; the files stay local only until the next join.
            for e in entries:
                self.files.pop(e["id"], None)
            self.pending, self.uncertain = None, False
        else:
            self.unexpected("publish", status, payload)

    async def unpublish(self, file_id, retry=False):
        self.pending, self.uncertain = ("unpublish", file_id), True
        status, payload = await self.req("unpublish", "DELETE",
                                         f"/api/v1/peers/{self.ident.peer_id}/files/{file_id}")
        # A 404 on a retry: the unanswered first try did it.
        if status == 204 or (retry and status == 404):
            name = self.files.pop(file_id, None)
            if name is not None:
                self.gone.append((file_id, name))
            self.pending, self.uncertain = None, False
        else:
            self.unexpected("unpublish", status, payload)

    async def leave(self):
        self.pending, self.uncertain = ("leave",), True
        status, payload = await self.req("leave", "DELETE", f"/api/v1/peers/{self.ident.peer_id}")
        if status == 204:
            self.state, self.pending, self.uncertain = "left", None, False
            self.rejoin_at = time.time() + rng.uniform(5.0, 60.0)
        else:
            self.unexpected("leave", status, payload)

    def kill(self):
        """SIGKILL, as far as a simulated peer goes: it stops, mid-request or not."""
        self.task.cancel()
        self.killed = True
        ghost = (self.ident.peer_id, dict(self.files), self.last_sent)
        ghosts.append(ghost)
        return ghost


# ---------------------------------------------------------------- checks

ghosts = []        # (peer id, files, last request sent) of killed peers


async def search_sources(name):
    """{file id: set of peer ids} for an exact search, or None without an answer."""
    path = "/api/v1/search?" + urllib.parse.urlencode({"q": name, "mode": "exact", "limit": 50})
    for _ in range(10):
        try:
            status, payload = await call(check_pool, checker.src, "check search", "GET", path,
                                         token=checker.token)
        except Unanswered:
            await asyncio.sleep(1.0)
            continue
        if status == 503:
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            continue
        if status != 200:
            stats.error(f"unexpected {status} on check search")
            return None
        return {hit["id"]: {s["peer_id"] for s in hit["sources"]} for hit in decode(payload)["results"]}
    return None


async def check_peer(peer, files_per_peer):
    """Checks one peer's ledger by exact searches; holds its lock so it does nothing meanwhile."""
    async with peer.lock:
        now = time.time()
        if peer.killed:
            return
        if peer.uncertain or peer.state == "new":
            stats.skipped["uncertain or not joined"] += 1
            return
        if peer.state == "online" and now - peer.last_ok > PEER_TIMEOUT - MARGIN:
            stats.skipped["heartbeat too old to be sure"] += 1
            return
        pid = peer.ident.peer_id
        if peer.state == "online":
            sample = rng.sample(list(peer.files.items()), min(files_per_peer, len(peer.files)))
            for file_id, name in sample:
                found = await search_sources(name)
                if found is None:
                    stats.skipped["check search unanswered"] += 1
                elif pid not in found.get(file_id, ()):
                    stats.violation("published file not found", f"peer {peer.number} {pid[:16]} {name!r}")
                else:
                    stats.checked["file found"] += 1
            for file_id, name in list(peer.gone)[-1:]:
                found = await search_sources(name)
                if found is not None and pid in found.get(file_id, ()):
                    stats.violation("unpublished file still found", f"peer {peer.number} {name!r}")
                elif found is not None:
                    stats.checked["unpublished file absent"] += 1
        else:
            for file_id, name in rng.sample(list(peer.files.items()), min(1, len(peer.files))):
                found = await search_sources(name)
                if found is not None and pid in found.get(file_id, ()):
                    stats.violation("left peer still found", f"peer {peer.number} {name!r}")
                elif found is not None:
                    stats.checked["left peer absent"] += 1


async def check_ghosts():
    """Killed peers whose timeout has passed must be gone from search results."""
    now = time.time()
    due = [g for g in ghosts if now > g[2] + PEER_TIMEOUT + KILL_SLACK and not g[3:]]
    for g in due:
        ghosts[ghosts.index(g)] = g + ("checked",)
        pid, files, _ = g
        for file_id, name in list(files.items())[:1]:
            found = await search_sources(name)
            if found is not None and pid in found.get(file_id, ()):
                stats.violation("killed peer not timed out", f"{pid[:16]} {name!r}")
            elif found is not None:
                stats.checked["killed peer timed out"] += 1


async def check_logins(sample):
    for user in sample:
        if not user.registered:
            continue
        status = await user.login(work_pool, check=True)
        if status == 201:
            stats.checked["account logs in"] += 1
        else:
            stats.violation("registered account cannot log in", f"{user.name} -> {status}")


async def check_daemons():
    for d in world.daemons:
        for name in d.files:
            found = await search_sources(name)
            if found is None:
                stats.skipped["check search unanswered"] += 1
            elif not any(d.peer_id in s for s in found.values()):
                stats.violation("daemon file not found", f"{d.name} {name!r}")
            else:
                stats.checked["daemon file found"] += 1
        ok, _ = await d.cli(["search", "soak daemon"])
        stats.checked["daemon CLI search ok" if ok else "daemon CLI search failed"] += 1


async def bounded(coros, limit):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def sampled_check(reason):
    t = time.time()
    before = sum(stats.violations.values())
    sample = rng.sample(peers, min(CHECK_SAMPLE, len(peers)))
    await bounded([check_peer(p, 1) for p in sample], 8)
    await check_logins(rng.sample(users, min(5, len(users))))
    await check_daemons()
    await check_ghosts()
    say(f"check ({reason}): {len(sample)} peers, 5 logins, daemons, ghosts in {time.time() - t:.0f} s; "
        f"violations so far {sum(stats.violations.values())} (+{sum(stats.violations.values()) - before})")


async def final_check():
    """With the peers stopped: one heartbeat each, then browse every user and search for every peer."""
    say("final check: heartbeats, browse of every user, a search per peer, every account logs in")
    await bounded([final_beat(p) for p in peers
                   if p.state == "online" and not p.uncertain and not p.killed], 32)
    await bounded([check_user(u) for u in users], 4)
    await bounded([check_peer(p, 1) for p in peers], 8)
    await check_logins(users)
    for d in world.daemons:
        if not await d.wait_joined(30):
            stats.violation("daemon not joined at the end", d.name)
    await check_daemons()
    await check_ghosts()


async def final_beat(peer):
    try:
        await peer.heartbeat()
    except Unanswered:
        pass


async def check_user(user):
    """Browses one user's files: every online peer's acknowledged files, nothing of gone peers."""
    path = f"/api/v1/users/{user.name}/files?limit=5000"
    for _ in range(10):
        try:
            status, payload = await call(check_pool, checker.src, "check browse", "GET", path,
                                         token=checker.token)
        except Unanswered:
            await asyncio.sleep(1.0)
            continue
        if status == 503:
            await asyncio.sleep(1.0)
            continue
        break
    else:
        stats.skipped["check browse unanswered"] += 1
        return
    if status != 200:
        stats.violation("user cannot be browsed", f"{user.name} -> {status}")
        return
    listed = {(f["peer_id"], f["id"]) for f in decode(payload)["files"]}
    now = time.time()
    for peer in [p for p in peers if p.user is user]:
        pid = peer.ident.peer_id
        if peer.killed:
            continue
        if peer.uncertain or peer.state == "new":
            stats.skipped["uncertain or not joined"] += 1
            continue
        mine = {(pid, i) for i in peer.files}
        if peer.state == "online":
            if now - peer.last_ok > PEER_TIMEOUT - MARGIN:
                stats.skipped["heartbeat too old to be sure"] += 1
                continue
            missing = mine - listed
            if missing:
                stats.violation("published file not listed by browse",
                                f"peer {peer.number}: {len(missing)} of {len(mine)} missing")
            stale = {(pid, i) for i, _ in peer.gone} & listed
            if stale:
                stats.violation("unpublished file listed by browse", f"peer {peer.number}: {len(stale)}")
            if not missing and not stale:
                stats.checked["browse: online peer complete"] += 1
        elif mine & listed:
            stats.violation("left peer listed by browse", f"peer {peer.number}")
        else:
            stats.checked["browse: left peer absent"] += 1
    for g in ghosts:
        pid, files = g[0], g[1]
        if now > g[2] + PEER_TIMEOUT + KILL_SLACK and {(pid, i) for i in files} & listed:
            stats.violation("killed peer listed by browse", pid[:16])


# ---------------------------------------------------------------- the killer


async def killer(end):
    while True:
        wait = rng.uniform(KILL_MIN, KILL_MAX)
        if time.time() + wait > end - 30:
            return
        await asyncio.sleep(wait)
        target = rng.choice([t for t in KILL_TARGETS if t != "daemon" or world.daemons])
        world.kills[target] += 1
        if target == "index":
            down = await world.kill_index()
            say(f"killed the index (SIGKILL); incarnation {world.index_incarnation} answering after {down:.2f} s")
            await asyncio.sleep(RECHECK_AFTER)
            await sampled_check(f"{RECHECK_AFTER} s after index restart {world.index_incarnation}")
        elif target == "daemon":
            d = rng.choice(world.daemons)
            await d.kill()
            joined = await d.wait_joined(120)
            say(f"killed {d.name} (SIGKILL); restarted, {'joined' if joined else 'NOT joined within 120 s'}")
            if not joined:
                stats.violation("daemon did not rejoin", d.name)
        else:
            alive = [p for p in peers if p.task and not p.task.done()]
            victims = rng.sample(alive, min(KILL_BATCH, len(alive)))
            for p in victims:
                p.kill()
            say(f"killed {len(victims)} simulated peers (no leave); they come back as new peers "
                f"after their timeout")
            asyncio.ensure_future(revive(victims))


async def revive(victims):
    await asyncio.sleep(PEER_TIMEOUT + KILL_SLACK + 5)
    await check_ghosts()
    if world.stopping:
        return
    for p in victims:
        p.fresh()
        p.task = asyncio.ensure_future(p.run())


# ---------------------------------------------------------------- sampling

samples = []   # (t, process, incarnation, rss KiB, fds)
crashes = []   # processes that exited without being killed


def processes():
    out = [("index", world.index_incarnation, world.index.pid, world.index_started)]
    out += [(d.name, d.incarnation, d.proc.pid, d.started) for d in world.daemons]
    return out


async def sampler(end):
    csv = open(SAMPLES, "w") if SAMPLES else None
    if csv:
        csv.write("t,process,incarnation,rss_kib,fds,requests_per_s,errors\n")
    last = time.time()
    while time.time() < end:
        await asyncio.sleep(SAMPLE_EVERY)
        now = time.time()
        # A process that died without being killed by the killer crashed.
        if world.down_since is None and world.index.poll() is not None:
            crashes.append(f"index#{world.index_incarnation} exited {world.index.returncode} at t={now - world.started:.0f}s")
            say(f"CRASH: {crashes[-1]}; starting it again")
            world.down_since = now
            await world.start_index()
            world.windows.append((world.down_since, time.time()))
            world.down_since = None
        for d in world.daemons:
            if d.proc.poll() is not None and not d.restarting:
                crashes.append(f"{d.name}#{d.incarnation} exited {d.proc.returncode} at t={now - world.started:.0f}s")
                say(f"CRASH: {crashes[-1]}; starting it again")
                await d.start()
        rps = stats.interval_requests / (now - last)
        errors = dict(stats.interval_errors)
        stats.interval_requests, stats.interval_errors, last = 0, collections.Counter(), now
        parts = []
        for name, inc, pid, _ in processes():
            rss, fds = status_kib(pid, "VmRSS"), fd_count(pid)
            if rss is None or fds is None:
                continue
            samples.append((now - world.started, name, inc, rss, fds))
            parts.append(f"{name}#{inc} {rss / 1024:.0f}M/{fds}fd")
            if csv:
                csv.write(f"{now - world.started:.0f},{name},{inc},{rss},{fds},{rps:.1f},"
                          f"\"{json.dumps(errors)}\"\n")
        if csv:
            csv.flush()
        online = sum(1 for p in peers if p.state == "online")
        say(f"t={now - world.started:5.0f}s {rps:6.1f} req/s online {online:4d}  " + "  ".join(parts) +
            (f"  errors {errors}" if errors else ""))


def report():
    """Growth per process incarnation; returns the list of failures."""
    failures = []
    say("")
    say("per process incarnation (warm-up left out: the first "
        f"{WARMUP:.0f} s of the run, {RESTART_WARMUP:.0f} s after a restart); slope = least squares, per 10 min")
    say(f"{'process':<16} {'inc':>3} {'from s':>6} {'to s':>6} {'RSS start':>9} {'end':>6} {'max':>6} "
        f"{'slope':>7}   {'fd start':>8} {'end':>5} {'max':>5} {'slope':>6}  verdict")
    groups = collections.defaultdict(list)
    for t, name, inc, rss, fds in samples:
        groups[(name, inc)].append((t, rss, fds))
    for (name, inc), rows in sorted(groups.items()):
        t0 = rows[0][0]
        warm = WARMUP if (name, inc) in (("index", 1),) or (name.startswith("soak-daemon") and inc == 1) \
            else RESTART_WARMUP
        kept = [r for r in rows if r[0] >= t0 + warm - SAMPLE_EVERY]
        if len(kept) < 2:
            say(f"{name:<16} {inc:>3} {t0:6.0f} {rows[-1][0]:6.0f}   (too short after warm-up)")
            continue
        span = kept[-1][0] - kept[0][0]
        rs = least_squares_slope([(t, r / 1024) for t, r, _ in kept]) * 600
        fs = least_squares_slope([(t, f) for t, _, f in kept]) * 600
        judged = span >= MIN_FIT
        verdict = "too short to judge"
        verdict_note = []
        if judged:
            bad = []
            allowance = INDEX_RSS_ALLOWANCE if name == "index" else DAEMON_RSS_ALLOWANCE
            grew = (max(r for _, r, _ in kept) - kept[0][1]) / 1024
            if rs > RSS_SLOPE_MAX and grew > allowance:
                bad.append(f"RSS +{rs:.1f} MiB/10 min > {RSS_SLOPE_MAX:g} and +{grew:.0f} MiB > {allowance:g}")
            elif rs > RSS_SLOPE_MAX:
                verdict_note.append(f"RSS slope over {RSS_SLOPE_MAX:g} but +{grew:.0f} MiB within {allowance:g}")
            if fs > FD_SLOPE_MAX:
                bad.append(f"fds +{fs:.1f}/10 min > {FD_SLOPE_MAX:g}")
            verdict = "; ".join(bad) if bad else "; ".join(verdict_note) or "flat"
            failures += [f"{name}#{inc}: {b}" for b in bad]
        say(f"{name:<16} {inc:>3} {kept[0][0]:6.0f} {kept[-1][0]:6.0f} {kept[0][1] / 1024:8.1f}M "
            f"{kept[-1][1] / 1024:5.1f}M {max(r for _, r, _ in kept) / 1024:5.1f}M {rs:+7.2f}   "
            f"{kept[0][2]:8d} {kept[-1][2]:5d} {max(f for _, _, f in kept):5d} {fs:+6.1f}  {verdict}")
    return failures


# ---------------------------------------------------------------- main


async def main():
    global world, work_pool, beat_pool, check_pool, users, peers, checker
    bin_path, tmp = sys.argv[1], sys.argv[2]
    world = World(bin_path, tmp)
    say(f"soak: {PEERS} simulated peers ({USERS} accounts), {DAEMONS} daemons, {DURATION:.0f} s, "
        f"heartbeat {HEARTBEAT} s, peer timeout {PEER_TIMEOUT} s, an action every {ACTION_EVERY:g} s per peer, "
        f"kills every {KILL_MIN:.0f}-{KILL_MAX:.0f} s, {os.cpu_count()} cores, seed {SEED}")
    await world.start_index()
    say(f"index {world.url} (pid {world.index.pid}), data in {tmp}/index")
    sources = [f"127.0.0.{2 + i}" for i in range(SOURCES)]
    work_pool = Pool(sources, CONNS // SOURCES)
    beat_pool = Pool(sources, HEARTBEAT_CONNS // SOURCES)
    check_pool = Pool(["127.0.0.1"], 8)

    checker = User("soak-checker", "127.0.0.1")
    users = [User(f"soak-user-{i:04d}", sources[i % SOURCES]) for i in range(USERS)]
    t = time.time()
    await checker.register(check_pool)
    await checker.login(check_pool)
    await bounded([u.register(work_pool) for u in users], 8)
    await bounded([u.login(work_pool) for u in users], 8)
    say(f"{USERS + 1} accounts registered and logged in in {time.time() - t:.1f} s")

    for i in range(DAEMONS):
        d = Daemon(i)
        world.daemons.append(d)
        await d.start()
        ok, _ = await d.cli(["register", d.name, "--password-stdin"], stdin=PASSWORD + "\n")
        if not ok:
            raise SystemExit(f"register {d.name} through the daemon failed; see {d.log}")
    for d in world.daemons:
        if not await d.wait_joined(120):
            raise SystemExit(f"daemon {d.name} did not join; see {d.log}")
    say(f"{DAEMONS} daemons joined: " + ", ".join(f"{d.name} pid {d.proc.pid}" for d in world.daemons))

    peers = [Peer(i, users[i % USERS]) for i in range(PEERS)]
    for p in peers:
        p.rejoin_at = time.time() + rng.uniform(0, 30)   # join over the first 30 s
        p.task = asyncio.ensure_future(p.run())
    start = time.time()
    end = start + DURATION
    sampler_task = asyncio.ensure_future(sampler(end))
    killer_task = asyncio.ensure_future(killer(end))
    await asyncio.sleep(max(0.0, end - time.time()))
    killer_task.cancel()
    await asyncio.gather(killer_task, return_exceptions=True)
    world.stopping = True
    world.stop.set()
    tasks = [p.task for p in peers if p.task]
    await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await sampler_task
    t = time.time()
    await final_check()
    say(f"final check took {time.time() - t:.0f} s")

    failures = report()
    say("")
    say(f"requests answered: {stats.total} in {time.time() - start:.0f} s "
        f"({stats.total / (time.time() - start):.1f}/s)")
    by_op = collections.Counter()
    for (op, status), n in stats.answers.items():
        by_op[op] += n
    say("  by operation: " + ", ".join(f"{op} {n}" for op, n in sorted(by_op.items())))
    statuses = collections.Counter()
    for (op, status), n in stats.answers.items():
        statuses[status] += n
    say("  by status: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())))
    say(f"kills: {dict(world.kills)}; index restarts answered again after "
        + ", ".join(f"{b - a:.2f}" for a, b in world.windows) + " s")
    say("errors by kind (while the index was restarting / while it was running):")
    kinds = sorted({k for k, _ in stats.errors})
    for kind in kinds:
        say(f"  {kind:<34} {stats.errors[(kind, 'restart')]:>7} / {stats.errors[(kind, 'running')]:>7}")
    if not kinds:
        say("  none")
    server_errors = sum(n for (k, w), n in stats.errors.items()
                        if w == "running" and k.endswith("server error"))
    if server_errors:
        failures.append(f"{server_errors} 5xx answers (other than 503 busy) while the index was running")
    say("ledger checks passed: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.checked.items())))
    say("not checked (could not be sure): " + (", ".join(f"{k} {n}" for k, n in sorted(stats.skipped.items()))
                                               or "none"))
    total_violations = sum(stats.violations.values())
    say(f"ledger violations: {total_violations}")
    for kind, n in stats.violations.items():
        say(f"  {kind}: {n}, e.g. {stats.examples[kind][:3]}")
    if total_violations:
        failures.append(f"{total_violations} ledger violations")
    say(f"crashes (exits not caused by the killer): {len(crashes)}" + "".join(f"\n  {c}" for c in crashes))
    if crashes:
        failures.append(f"{len(crashes)} crashes")
    for name, inc, pid, _ in processes():
        say(f"{name}: {inc} incarnation(s), now pid {pid}")
    if failures:
        say("FAIL: " + "; ".join(failures))
        return 1
    say("PASS: nothing acknowledged was lost, no 5xx outside restarts, no process grew past its thresholds")
    return 0


def on_term(*_):
    raise SystemExit(143)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    world = None
    code = 1
    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    finally:
        if world is not None:
            world.stop_all()
    sys.exit(code)
