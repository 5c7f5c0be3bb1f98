#!/usr/bin/env python3
"""Driver for bench/messages.sh (Python 3 standard library only).

    messages_load.py BIN WORK_DIR

Starts NODES daemons in one DHT with no index (through bench/dht_load.py's
node handling), then:

1. online: for PAIRS pairs, `msg` from one node to another (the CLI returns
   once the recipient's receipt is in) against `browse` of the same
   recipient at its full address, a direct libp2p request-response round
   trip through the same CLI and API, measured in the same run;
2. offline, one round per step of KILLS: PAIRS fresh recipients stop, their
   senders write to them and stop too, the other nodes are killed up to
   the step's share (SIGKILL; never a sender or recipient), the recipients
   start again and have DEADLINE seconds to collect their letter from the
   DHT nodes nearest them. The share delivered (exactly once) is the result.
"""

import os
import statistics
import sys
import time

import dht_load as d
from benchlib import env_float, env_int

PAIRS = env_int("PAIRS", 10)
DEADLINE = env_float("DEADLINE", 60.0)


def msg(sender, recipient, text):
    """`msg` from sender to recipient's peer id: (ms, state)."""
    wall, rc, v, err = sender.cli("msg", recipient.peer_id, text)
    state = ((v or {}).get("message") or {}).get("state") if rc == 0 else f"error: {err}"
    return wall * 1000, state


def texts_from(recipient, sender):
    _, rc, v, _ = recipient.cli("chat", sender.peer_id, "--limit", "50")
    if rc != 0 or not isinstance(v, list):
        return []
    return [m.get("text") for m in v]


def online(pairs):
    lat, base, states = [], [], []
    for k, (s, r) in enumerate(pairs):
        # Alternate the order so neither side always finds the connection the other opened.
        if k % 2 == 0:
            ms, state = msg(s, r, f"hello {k}")
            b_ms, _ = d.browse(s, r)
        else:
            b_ms, _ = d.browse(s, r)
            ms, state = msg(s, r, f"hello {k}")
        states.append(state)
        if state in ("delivered", "read"):
            lat.append(ms)
        base.append(b_ms)
    return lat, base, states


def offline_round(label, pairs, nodes, special, percent):
    recipients = [r for _, r in pairs]
    senders = [s for s, _ in pairs]
    for s, r in pairs:  # first contact: each sender learns its recipient's key
        msg(s, r, "first contact")
    d.stop_all(recipients)
    stored = 0
    for k, (s, r) in enumerate(pairs):
        _, state = msg(s, r, f"{label} letter {k}")
        stored += state == "stored"
    d.stop_all(senders)
    want = -(-len(nodes) * percent // 100)
    candidates = [n for n in nodes if not n.dead and n not in special]
    dead = sum(1 for n in nodes if n.dead)
    victims = d.rng.sample(candidates, max(0, min(len(candidates), want - dead)))
    for n in victims:
        n.proc.send_signal(9)
    for n in victims:
        n.proc.wait()
        n.dead = True
    d.write_pids(nodes)
    t0 = time.monotonic()
    for r in recipients:
        d.start(r)
    d.wait_ready(recipients, nodes)
    waiting = dict(enumerate(pairs))
    took = {}
    while waiting and time.monotonic() - t0 < DEADLINE:
        for k, (s, r) in list(waiting.items()):
            got = texts_from(r, s)
            if f"{label} letter {k}" in got:
                took[k] = (time.monotonic() - t0, got.count(f"{label} letter {k}"))
                del waiting[k]
        time.sleep(0.5)
    dead = sum(1 for n in nodes if n.dead)
    twice = sum(1 for _, c in took.values() if c > 1)
    times = [t for t, _ in took.values()]
    print(f"  {label}: {dead}/{len(nodes)} nodes dead; {stored}/{len(pairs)} left with DHT nodes; "
          f"{len(took)}/{len(pairs)} delivered within {DEADLINE:.0f} s"
          + (f" (p50 {statistics.median(times):.1f} s after the recipient started, "
             f"max {max(times):.1f} s)" if times else "")
          + (f"; {twice} shown twice" if twice else ""), flush=True)
    return {"label": label, "dead": dead, "stored": stored, "delivered": len(took),
            "pairs": len(pairs), "twice": twice, "times": times}


def main():
    os.makedirs(os.path.join(d.WORK, "logs"), exist_ok=True)
    rounds = len(d.KILLS)
    if 2 * PAIRS * (rounds + 1) > d.NODES // 2:
        raise SystemExit("NODES must be at least 4 x PAIRS x (rounds + 1)")
    nodes = [d.Node(i) for i in range(d.NODES)]
    ok = False
    try:
        print(f"starting {d.NODES} nodes (no index) ...", flush=True)
        startup = d.start_all(nodes)
        print(f"all up in {startup:.1f} s", flush=True)
        pool = d.rng.sample(nodes, 2 * PAIRS * (rounds + 1))
        special = set(pool)
        groups = [[(pool[2 * (g * PAIRS + j)], pool[2 * (g * PAIRS + j) + 1]) for j in range(PAIRS)]
                  for g in range(rounds + 1)]
        lat, base, states = online(groups[0])
        bad = [s for s in states if s not in ("delivered", "read")]
        ratio = statistics.median(lat) / statistics.median(base) if lat and base else float("nan")
        print(f"  online: {len(lat)}/{len(states)} delivered before `msg` returned"
              + (f" (others: {bad})" if bad else ""), flush=True)
        rows = [offline_round(f"{p} % killed", groups[i + 1], nodes, special, p)
                for i, p in enumerate(d.KILLS)]
        print()
        print(f"peershare messages benchmark: {d.NODES} nodes on 127.0.0.1, no index, "
              f"{PAIRS} pairs per step, {os.cpu_count()} cores, seed {d.SEED}"
              + (f", up args: {' '.join(d.UP_ARGS)}" if d.UP_ARGS else ""))
        print(f"online delivery: `msg` (until the receipt) p50 {d.fmt(d.pct(lat, 50))} ms, "
              f"p90 {d.fmt(d.pct(lat, 90))} ms; baseline `browse` (request-response round trip) "
              f"p50 {d.fmt(d.pct(base, 50))} ms; ratio {d.fmt(ratio, 2)} "
              f"(goal <= 2: {'met' if ratio <= 2 else 'NOT met'})")
        print(f"{'step':<13}{'dead':>6}{'stored':>8}{'delivered':>11}{'share':>8}{'p50 s':>7}{'max s':>7}")
        for r in rows:
            share = 100.0 * r["delivered"] / r["pairs"]
            print(f"{r['label']:<13}{r['dead']:>6}{r['stored']:>8}"
                  f"{str(r['delivered']) + '/' + str(r['pairs']):>11}{share:>7.0f}%"
                  f"{d.fmt(d.pct(r['times'], 50), 1):>7}{d.fmt(max(r['times']) if r['times'] else None, 1):>7}")
        at30 = next((r for r in rows if r["label"] == "30 % killed"), None)
        if at30:
            met = at30["delivered"] == at30["pairs"] and at30["twice"] == 0
            print(f"goal: 100 % delivered (once) after 30 % loss: "
                  f"{'met' if met else 'NOT met'}")
        ok = True
    finally:
        d.stop_all(nodes, graceful=ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
