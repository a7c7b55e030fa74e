#!/usr/bin/env python3
"""Helpers for attack.sh (no third-party modules).
  attack.py sample PID SECS OUT [CAP_KB]  write "seconds_since_start rss_kB" every second for
                                    SECS s (stops early if PID exits; SIGKILLs PID once its RSS
                                    passes CAP_KB, a safety valve on a shared machine)
  attack.py kv FILE KEY             value of KEY in the last line of FILE holding KEY=...
  attack.py sipp STATCSV            "created=N ok=N fail=N retrans=N" from SIPp's statistics
  attack.py table RESULTS MEMFILE   the attack report (targets printed, never enforced)
RESULTS lines are key=value (pass=..., from stats.py pass plus created/hwm_kb/flood_*)."""
import csv, os, sys, time


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def sample(pid, secs, out, cap_kb=0):
    """cap_kb: SIGKILL the server once its RSS passes it (a shared machine's safety valve)."""
    t0 = time.monotonic()
    with open(out, "w") as f:
        k = 0
        while True:
            t = time.monotonic() - t0
            if t > secs:
                break
            r = rss_kb(pid)
            if r is None:
                f.write(f"{t:.2f} dead\n")
                break
            f.write(f"{t:.2f} {r}\n")
            f.flush()
            if cap_kb and r > cap_kb:
                os.kill(pid, 9)
                f.write(f"{t:.2f} capped\n")
                break
            k += 1
            time.sleep(max(0.0, t0 + k - time.monotonic()))


def kv(path, key):
    val = ""
    try:
        for line in open(path):
            for x in line.split():
                if x.startswith(key + "="):
                    val = x.split("=", 1)[1]
    except OSError:
        pass
    return val


def sipp(statcsv):
    rows = list(csv.reader(open(statcsv), delimiter=";"))
    st = dict(zip(rows[0], rows[-1]))
    created = st.get("OutgoingCallCreated(C)") or st.get("TotalCallCreated") or "0"
    print(f"created={created} sipp_ok={st.get('SuccessfulCall(C)', 0)} "
          f"sipp_fail={st.get('FailedCall(C)', 0)} sipp_retrans={st.get('Retransmissions(C)', 0)}")


def mb(kb):
    return f"{int(kb) / 1024:.0f}"


def table(results, memfile):
    res = {}
    for line in open(results):
        d = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "pass" in d:
            res[d["pass"]] = d
    ok_all = True
    cols = ["pass", "legit ok / attempted", "success", "failed", "unfinished", "p50 ms", "p99 ms",
            "peak RSS MB", "server CPU s", "retrans", "flooder sent", "flooder rate/s"]
    rows = []
    for p in ("baseline", "flood"):
        d = res.get(p)
        if not d:
            continue
        created = int(d.get("created") or 0)
        ok = int(d.get("ok") or 0)
        succ = 100.0 * ok / created if created else 0.0
        cpu = d.get("cpu_total_ms", "void")
        cpu = f"{int(cpu) / 1000:.1f}" if cpu.lstrip("-").isdigit() else cpu
        fail = int(d.get("fail") or 0)
        rows.append([p, f"{ok}/{created}", f"{succ:.2f} %", fail, max(0, created - ok - fail),
                     d.get("p50_ms", "-"), d.get("p99_ms", "-"),
                     mb(d["hwm_kb"]) if d.get("hwm_kb") else "-", cpu, d.get("retrans", "-"),
                     d.get("flood_sent", "-"), d.get("flood_rate", "-")])
        try:
            if succ < 99 or float(d.get("p99_ms", 1e9)) >= 500 or int(d.get("hwm_kb", 1 << 40)) >= 200 * 1024:
                ok_all = False
        except ValueError:
            ok_all = False
    rows.append(["target", "", ">= 99 %", "", "", "", "< 500", "< 200", "", "", "", ""])
    w = [max(len(str(r[i])) for r in rows + [cols]) for i in range(len(cols))]
    fmt = lambda r: "  ".join(str(v).rjust(w[i]) if i > 0 else str(v).ljust(w[i]) for i, v in enumerate(r))
    print(fmt(cols))
    print(fmt(["-" * x for x in w]))
    for r in rows:
        print(fmt(r))

    c = res.get("calls")
    if c:
        print()
        base = int(c.get("base_kb") or 0)
        samples = []
        dead_at = None
        capped = False
        if os.path.exists(memfile):
            for line in open(memfile):
                t, v = line.split()
                if v in ("dead", "capped"):
                    dead_at = float(t)
                    capped = v == "capped"
                    break
                samples.append((float(t), int(v)))
        send_end = float(c.get("flood_secs") or 0)  # the sampler and the flooder start together
        print(f"unanswered INVITEs: {c.get('flood_sent', '?')} sent in {c.get('flood_secs', '?')} s "
              f"= {c.get('flood_rate', '?')}/s (asked {c.get('want_rate')}/s) from {c.get('flood_sources')} "
              f"sources to {c.get('to')} (registered; its phone never answers)")
        if samples:
            peak_t, peak = max(samples, key=lambda s: s[1])
            tol = max(base // 10, 10 * 1024)
            at_end = min(samples, key=lambda s: abs(s[0] - send_end))[1]
            back = next((t for t, v in samples if t >= send_end and v <= base + tol), None)
            last_t, last = samples[-1]
            print(f"  parley RSS (sampled every 1 s): before {mb(base)} MB, peak {mb(peak)} MB at "
                  f"{peak_t:.0f} s (VmHWM {mb(c.get('hwm_kb') or 0)} MB), {mb(at_end)} MB when the "
                  f"sending ended ({send_end:.0f} s), {mb(last)} MB at {last_t:.0f} s")
            if back is not None:
                print(f"  back within max(10 %, 10 MB) of the RSS before: yes, {back - send_end:.0f} s after "
                      f"the sending ended")
            else:
                print(f"  back within max(10 %, 10 MB) of the RSS before: NO, not within "
                      f"{max(0.0, last_t - send_end):.0f} s after the sending ended")
            if peak >= 200 * 1024 or back is None or back - send_end > 60:
                ok_all = False
        if capped:
            print(f"  parley KILLED by this pass {dead_at:.0f} s into the run: its RSS passed the "
                  f"safety cap of {c.get('cap_mb')} MB (ATTACK_RSS_CAP_MB)")
        elif dead_at is not None:
            print(f"  PARLEY DIED {dead_at:.0f} s into the run (exit status {c.get('exit', '?')}; "
                  f"128+N: signal N)")
            ok_all = False
        if c.get("phone_queued"):
            print(f"  the phone's socket held {c['phone_queued']} datagrams at the end "
                  f"({c.get('phone_invites')} INVITEs): parley did forward the calls")
        print(f"  server answers OPTIONS (within 5 s) at the end: {c.get('alive', '?')}")
        print("  targets: peak RSS < 200 MB, back to the RSS before within 60 s")
    for p in ("baseline", "flood"):
        if p in res and res[p].get("alive", "yes") != "yes":
            print(f"{p}: server answers OPTIONS (within 5 s) at the end: {res[p].get('alive')}")
            ok_all = False
    print()
    print("unfinished = still open when SIPp stopped (20 s after the last planned start), not successful")
    print("attack targets: " + ("all met" if ok_all else "NOT all met (reported, not enforced)"))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "sample":
        sample(int(a[0]), float(a[1]), a[2], int(a[3]) if len(a) > 3 else 0)
    elif cmd == "kv":
        print(kv(a[0], a[1]))
    elif cmd == "sipp":
        sipp(a[0])
    elif cmd == "table":
        table(a[0], a[1])
    else:
        sys.exit(__doc__)
