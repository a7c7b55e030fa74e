#!/usr/bin/env python3
"""Helpers for bench.sh and mem.sh (no third-party modules).
  stats.py port [tcp]                  print a free UDP (or TCP) port on 127.0.0.1
  stats.py cpu PID                     user+system CPU microseconds of PID and its descendants
                                       (cpu.sh does the same faster; bench.sh uses cpu.sh)
  stats.py rss PID                     VmRSS of PID in kB
  stats.py ping PORT TIMEOUT_S [READY] send OPTIONS to 127.0.0.1:PORT every 5 ms until any
                                       answer; print seconds waited and the wall-clock time
                                       of the answer (exit 1 on timeout); creates the file
                                       READY once its socket is open
  stats.py pass TAG STATCSV RTTDIR T0 T1 C0 C1 -> one line of key=value for the pass
  stats.py table RESULTFILE...         print the table (and Parley/Kamailio ratios)
Response times (p50/p99) come from SIPp's -trace_rtt file: one row per successful
transaction with the value of response-time timer 1 in ms (SIPp's clock resolution, 1 ms),
so the percentiles are exact order statistics over every transaction of the pass, not
interpolations from the ResponseTimeRepartition buckets."""
import csv, glob, os, socket, sys, time


def free_port(tcp=False):
    """A port free for UDP (or TCP with tcp=True) on 127.0.0.1; for TCP one the kernel
    would also give to a listener (not one a closed connection still holds)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_us(root):
    kids, t = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(f[1]), []).append(int(p))
        t[int(p)] = int(f[11]) + int(f[12])  # utime + stime, all threads
    tot, todo = 0, [root]
    while todo:
        p = todo.pop()
        tot += t.get(p, 0)
        todo += kids.get(p, [])
    return tot * 1000000 // tick


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ping(port, timeout, ready=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.005)
    if ready:
        open(ready, "w").close()
    lp = s.getsockname()[1]
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < timeout:
        n += 1
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-ping-{os.getpid()}-{n}\r\n"
               f"From: <sip:ping@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
               f"Call-ID: ping-{os.getpid()}-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
               "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        try:
            s.sendto(msg.encode(), ("127.0.0.1", port))
            d = s.recv(65536)
            if d.startswith(b"SIP/2.0 "):
                print(f"{time.monotonic() - t0:.3f} {time.time():.6f}")  # waited, wall clock
                return 0
        except (socket.timeout, ConnectionRefusedError):
            pass
    return 1


def last_row(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    return dict(zip(rows[0], rows[-1]))


def pct(sorted_vals, q):
    if not sorted_vals:
        return -1
    k = max(0, min(len(sorted_vals) - 1, int(-(-q * len(sorted_vals) // 1)) - 1))  # nearest rank
    return sorted_vals[k]


def one_pass(tag, statcsv, rttdir, t0, t1, c0, c1):
    st = last_row(statcsv)
    ok, bad = int(st["SuccessfulCall(C)"]), int(st["FailedCall(C)"])
    retr = int(st.get("Retransmissions(C)", 0))
    rtts = []
    for f in glob.glob(os.path.join(rttdir, "*_rtt.csv")):
        for row in csv.reader(open(f), delimiter=";"):
            if len(row) >= 3 and row[2] == "1":
                try:
                    rtts.append(float(row[1]))
                except ValueError:
                    pass
    rtts.sort()
    el = float(t1) - float(t0)
    try:
        cpu = int(c1) - int(c0)
    except ValueError:  # a CPU reading failed
        cpu = -1
    # one decimal: cpu.sh reads nanoseconds, and a registration costs some 10 µs
    cpu_tx = f"{cpu / max(ok, 1):.1f}" if cpu >= 0 else "void"  # void: the server died mid-pass
    print(f"pass={tag} ok={ok} fail={bad} retrans={retr} secs={el:.2f} rate={ok / el:.0f} "
          f"cpu_us={cpu_tx} cpu_total_ms={cpu // 1000 if cpu >= 0 else 'void'} p50_ms={pct(rtts, .5):g} "
          f"p99_ms={pct(rtts, .99):g} nrtt={len(rtts)}")


def table(files):
    res = {}  # (server, pass) -> dict
    meta = {}
    for fn in files:
        for line in open(fn):
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            if "pass" in kv:
                res[(kv["server"], kv["pass"])] = kv
            elif "server" in kv:
                meta[kv["server"]] = kv
    servers = list(dict.fromkeys(s for s, _ in res))
    cols = ["server", "pass", "tx/s", "cpu µs/tx", "p50 ms", "p99 ms", "ok", "fail", "retrans"]
    rows = []
    for (s, p), kv in res.items():
        rows.append([s, p, kv["rate"], kv["cpu_us"], kv["p50_ms"], kv["p99_ms"], kv["ok"],
                     kv["fail"], kv["retrans"]])
    w = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
    fmt = lambda r: "  ".join(str(v).rjust(w[i]) if i > 1 else str(v).ljust(w[i]) for i, v in enumerate(r))
    print(fmt(cols))
    print(fmt(["-" * x for x in w]))
    for r in rows:
        print(fmt(r))
    if "parley" in servers and "kamailio" in servers:
        print()
        print("Parley/Kamailio   (targets: throughput >= 1, CPU per transaction <= 0.33)")
        for p in dict.fromkeys(p for _, p in res):
            a, b = res.get(("parley", p)), res.get(("kamailio", p))
            if not a or not b:
                continue
            def ratio(k):
                try:
                    x, y = float(a[k]), float(b[k])
                except ValueError:
                    return "n/a"
                return f"{x / y:.2f}" if y > 0 and x >= 0 else "n/a"
            print(f"  {p:8}  throughput {ratio('rate')}   cpu/tx {ratio('cpu_us')}   "
                  f"p50 {ratio('p50_ms')}   p99 {ratio('p99_ms')}")
    bad = [f"{s}/{p}" for (s, p), kv in res.items() if kv["fail"] != "0"]
    if bad:
        print(f"\nFAILURES (must be 0): {' '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "port":
        print(free_port(a[:1] == ["tcp"]))
    elif cmd == "cpu":
        print(cpu_us(int(a[0])))
    elif cmd == "rss":
        print(rss_kb(int(a[0])))
    elif cmd == "ping":
        sys.exit(ping(int(a[0]), float(a[1]), a[2] if len(a) > 2 else None))
    elif cmd == "pass":
        one_pass(*a)
    elif cmd == "table":
        sys.exit(table(a))
    else:
        sys.exit(__doc__)
