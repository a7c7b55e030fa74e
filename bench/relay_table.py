#!/usr/bin/env python3
"""relay_table.py RELAY_RUNS RELAY_RESULTS: the relay pass's table (relay.sh, after bench.sh's).
RELAY_RUNS: the measured SIPp run of each relay pass (server=... run=N pass=relay ok= fail=
rate= cpu_us= secs= ...); RELAY_RESULTS: relay.sh's lines (server=... run=N sessions= calls=
managed= terminated= timedout= rtpe_cpu_ms= pass_secs=, or server=... run=N notrun=WHY).
One row per server and run, then each server's medians, and the Parley/Kamailio ratio of the
median CPU per call (with each run's own ratio). Exit 1 if a run failed calls, left rtpengine
sessions or did not run."""
import statistics
import sys


def read(fn):
    """{(server, run): kv} of the lines of fn."""
    d = {}
    try:
        lines = open(fn).read().splitlines()
    except FileNotFoundError:
        return d
    for line in lines:
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "server" in kv:
            d[(kv["server"], kv.get("run", "1"))] = kv
    return d


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def median_of(rows, k):
    v = [num(r.get(k)) for r in rows]
    v = [x for x in v if x is not None and x >= 0]
    return statistics.median(v) if v else None


def main(runs_fn, results_fn):
    res = read(runs_fn)
    rel = read(results_fn)
    print("relay pass: media always, through one fresh local rtpengine per server and run (no RTP")
    print("sent); cpu = the server's user+system per call (its process and children, as above);")
    print("rtpengine's CPU over the same measured run apart, not counted; sessions left = rtpengine's")
    print("own sessions after the measured run (must be 0); created/deleted since rtpengine started")
    print("(warm-up too). The servers take turns run by run; medians last.")
    cols = ["server", "run", "calls/s", "cpu µs/call", "rtpengine µs/call", "fail", "sessions left",
            "created", "deleted", "timed out", "measured s", "whole pass s"]
    rows, notes, bad = [], [], 0
    servers = list(dict.fromkeys(s for s, _ in rel))
    for (s, run), r in sorted(rel.items(), key=lambda x: (servers.index(x[0][0]), int(x[0][1]))):
        p = res.get((s, run), {})
        if "notrun" in r:
            notes.append(f"NOT RUN: {s} run {run}: {r['notrun'].replace('_', ' ')}")
            bad = 1
            continue
        try:
            rcpu = int(r["rtpe_cpu_ms"]) * 1000 // max(int(p.get("ok", "0") or 0), 1)
        except (KeyError, ValueError):
            rcpu = "?"
        left = r["sessions"] if r["sessions"] == r["calls"] else f"{r['sessions']} (list {r['calls']})"
        try:  # rtpengine's managedsessions counts the sessions that have ended
            created = int(r["managed"]) + int(r["sessions"])
        except (KeyError, ValueError):
            created = "?"
        rows.append([s, run, p.get("rate", "?"), p.get("cpu_us", "?"), rcpu, p.get("fail", "?"), left,
                     created, r.get("terminated", "?"), r.get("timedout", "?"),
                     p.get("secs", "?"), r.get("pass_secs", "?")])
        if p.get("fail") != "0":
            bad = 1
            notes.append(f"FAILURES: {s} run {run}: {p.get('fail', 'no SIPp result')} (must be 0)")
        if r["sessions"] != "0" or r["calls"] != "0":
            bad = 1
            notes.append(f"LEAK: {s} run {run} left {r['sessions']} rtpengine sessions (must be 0); "
                         f"their call-IDs: relay/{s}/sessions-left.txt")
    med = {}
    for s in servers:
        mine = [v for (srv, _), v in res.items() if srv == s]
        if mine:
            med[s] = {k: median_of(mine, k) for k in ("rate", "cpu_us", "p50_ms", "p99_ms")}
            m = med[s]
            fmt1 = lambda x: "?" if x is None else f"{x:.0f}"
            rows.append([s, "median", fmt1(m["rate"]), fmt1(m["cpu_us"]), "", "", "", "", "", "", "", ""])
    if rows:
        w = [max(len(str(x[i])) for x in rows + [cols]) for i in range(len(cols))]
        fmt = lambda r: "  ".join(str(v).rjust(w[i]) if i > 1 else str(v).ljust(w[i]) for i, v in enumerate(r))
        print(fmt(cols))
        print(fmt(["-" * x for x in w]))
        for r in rows:
            print(fmt(r))
    for n in notes:
        print(n)
    a, b = med.get("parley"), med.get("kamailio")
    if a and b:
        def ratio(k):
            x, y = a.get(k), b.get(k)
            return f"{x / y:.2f}" if x is not None and y else "n/a"
        each = []
        for (s, run), p in sorted(res.items(), key=lambda x: int(x[0][1])):
            q = res.get(("kamailio", run))
            if s == "parley" and q and num(p.get("cpu_us")) is not None and num(q.get("cpu_us")):
                each.append(f"{num(p['cpu_us']) / num(q['cpu_us']):.2f}")
        x = ratio("cpu_us")
        # On the exact figures: 0.3347 prints as 0.33 but is over a third.
        exact = a["cpu_us"] / b["cpu_us"] if a.get("cpu_us") is not None and b.get("cpu_us") else None
        met = "n/a" if exact is None else ("met" if exact <= 1 / 3 else "NOT met")
        print(f"\nParley/Kamailio relay (medians)   cpu/call {x} (target <= 0.33: {met}; "
              f"each run: {' '.join(each) or 'n/a'})   throughput {ratio('rate')}   "
              f"p50 {ratio('p50_ms')}   p99 {ratio('p99_ms')}")
    return bad


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
