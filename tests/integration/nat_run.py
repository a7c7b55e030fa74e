"""nat_run.py: two real baresip phones, each behind its own NAT router (natnet.py), call each
other through Parley. Run it inside `unshare -n -m` (a private network and mount namespace):
nothing it builds is visible outside or can reach a real network.

Signalling only (no media relay here, so audio cannot flow between the two private LANs).
For each call it checks that the call is answered on both phones, that Parley sends the ACK
for the 2xx to the callee's router (its public address, not the phone's private Contact)
and the callee sees it, that the BYE goes to the other side's router and ends the call
there, and that `parley calls` records the call answered with a duration.
Call 1: alice (ph1) calls bob (ph2), the caller hangs up (BYE caller -> callee).
Call 2, at the same time: dave (ph2) calls carol (ph1), the callee hangs up (BYE callee -> caller).

usage: nat_run.py PARLEY_BIN WORKDIR [--no-nat]
(writes WORKDIR/nat.json; exit 0 when every check holds). --no-nat is the control: the
routers only route, the server can reach both LANs, and each check expects the phones' own
addresses where it expects the routers' public addresses behind NAT.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import natnet  # noqa: E402
from baresip import Baresip  # noqa: E402
from sipua import wait_for  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
NAT = "--no-nat" not in sys.argv[3:]
DB = os.path.join(WORK, "nat.db")
LOG = os.path.join(WORK, "parley.log")
SRV_IP, SRV_PORT = "203.0.113.1", 5060
checks = []
lock = threading.Lock()  # the two calls run in threads


def check(name, ok, detail=""):
    with lock:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""), flush=True)
    return ok


def parley_log():
    with open(LOG, "rb") as f:
        return f.read().decode("utf-8", "replace")


def sends(method, phone, since):
    """(destination, first line) of every request of that method Parley logged sending, after
    log offset since, to the phone's contact (baresip's contact user is USER-0x...)."""
    pat = r"send: to (\S+) \d+ bytes: (" + method + r" sip:" + re.escape(phone.user) + r"-\S+ SIP/2\.0)"
    return re.findall(pat, parley_log()[since:])


def received(phone, method, since):
    """Whether the phone's SIP trace (`UDP SRC -> DST` before each message) shows a request of
    that method arriving at the phone after log offset since."""
    pat = r"-> " + re.escape(phone.host) + r":\d+\s*\n" + method + r" sip:"
    return re.search(pat, phone.read_log()[since:]) is not None


def event(phone, etype, timeout):
    try:
        phone.wait_event(etype, timeout)
        return True
    except TimeoutError:
        return False


def call_records():
    return subprocess.run([BIN, "calls", "--db", DB], capture_output=True, text=True).stdout


def call(n, caller, callee, hangup_by, caller_pub, callee_pub):
    try:
        one_call(n, caller, callee, hangup_by, caller_pub, callee_pub)
    except Exception as e:  # noqa: BLE001 -- a failed check, not a lost thread
        check(f"call {n} ran to the end", False, f"{type(e).__name__}: {e}")


def one_call(n, caller, callee, hangup_by, caller_pub, callee_pub):
    """One call: caller dials, callee auto-answers, hangup_by ends it with a BYE to the other."""
    other = callee if hangup_by is caller else caller
    other_pub = callee_pub if hangup_by is caller else caller_pub
    tag = f"call {n} ({caller.user} -> {callee.user}, {hangup_by.user} hangs up)"
    at = len(parley_log())
    at_log = {p: len(p.read_log()) for p in (caller, callee)}
    caller.command("dial", callee.aor)
    # The caller is established when the callee's 200 reaches it; the callee (baresip)
    # only once the ACK for that 200 has arrived.
    if not check(f"{tag}: answered (the caller has the callee's 200)", event(caller, "CALL_ESTABLISHED", 15)):
        return
    acks = wait_for(lambda: sends("ACK", callee, at), 5)
    check(f"{tag}: Parley sent the ACK to the callee's side {callee_pub}",
          acks and all(d.startswith(callee_pub + ":") for d, _ in acks), f"ACK sent to {sorted(set(acks))}")
    got_ack = event(callee, "CALL_ESTABLISHED", 6)
    check(f"{tag}: the callee received the ACK and its call is established",
          got_ack and received(callee, "ACK", at_log[callee]),
          f"{callee.user}: CALL_ESTABLISHED {got_ack}, ACK in its trace {received(callee, 'ACK', at_log[callee])}")
    at_bye = len(parley_log())
    hangup_by.command("hangup")
    closed = event(other, "CALL_CLOSED", 10)
    byes = wait_for(lambda: sends("BYE", other, at_bye), 2)
    check(f"{tag}: Parley sent the BYE to {other.user}'s side {other_pub}",
          byes and all(d.startswith(other_pub + ":") for d, _ in byes), f"BYE sent to {sorted(set(byes))}")
    got_bye = received(other, "BYE", at_log[other])
    check(f"{tag}: {other.user} received the BYE and its call ended", closed and got_bye,
          f"{other.user}: CALL_CLOSED {closed}, BYE in its trace {got_bye}")
    want = (rf"^{caller.user}@a\.test\s+{callee.user}@a\.test\s+\S+ \S+\s+\d\d:\d\d:\d\d\s+"
            rf"\d\d:\d\d:\d\d\s+answered \(200\)\s+\d+:\d\d\s+direct$")
    rows = wait_for(lambda: [ln for ln in call_records().splitlines() if re.search(want, ln)], 4)
    check(f"{tag}: `parley calls` records it answered and ended, with a duration", len(rows) == 1,
          f"rows {rows or call_records().splitlines()}")


def main():
    natnet.private_netns_dir()
    topo = natnet.build_two_nats(SRV_IP, nat=NAT)
    log = open(LOG, "ab")
    try:
        srv = natnet.start_parley(BIN, "srv", SRV_IP, SRV_PORT, DB, log)
    except RuntimeError as e:
        raise RuntimeError(f"{e}:\n{parley_log()}") from e
    ph = topo["phones"]
    # Two phones on each LAN, one pair per call, so that what one call leaves behind (a
    # callee retransmitting its 200, Parley retransmitting a BYE nobody receives) cannot be
    # mistaken for the other call's signalling.
    spec = (("alice", "ph1", 5060, 4444), ("carol", "ph1", 5070, 4445),
            ("bob", "ph2", 5060, 4444), ("dave", "ph2", 5070, 4445))
    phones = {}
    for user, ns, port, ctrl in spec:
        subprocess.run([BIN, "user", "add", f"{user}@a.test", "--password", f"{user}pw", "--db", DB],
                       check=True, capture_output=True)
        phones[user] = Baresip(WORK, user, user, "a.test", f"{user}pw", SRV_PORT, server_host=SRV_IP,
                               answermode="auto", host=ph[ns]["addr"], netns=ns, sip_port=port, ctrl_port=ctrl)
    # Where Parley must send requests for each LAN's phones: their router's public address
    # behind NAT, their own address in the control case.
    pub1, pub2 = ((ph["ph1"]["public"], ph["ph2"]["public"]) if NAT else (ph["ph1"]["addr"], ph["ph2"]["addr"]))
    alice, carol, bob, dave = (phones[u] for u in ("alice", "carol", "bob", "dave"))
    try:
        for p in phones.values():
            p.start()
        for p in phones.values():
            p.wait_registered()
        regs = subprocess.run([BIN, "reg", "list", "--db", DB], capture_output=True, text=True).stdout
        print(regs, flush=True)
        # Both calls at once (each thread drives only its own two phones).
        runs = [threading.Thread(target=call, args=(1, alice, bob, alice, pub1, pub2)),
                threading.Thread(target=call, args=(2, dave, carol, carol, pub2, pub1))]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
    except Exception as e:  # noqa: BLE001 -- reported as a failed check, with the logs kept
        check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        natnet.stop_phones(phones.values())
        natnet.stop_parley(srv, log)
    fatal = [m for m in ("ERROR: AddressSanitizer", "runtime error:") if m in parley_log()]
    check("parley exited cleanly", srv.returncode == 0 and not fatal, f"exit {srv.returncode} {fatal}")
    with open(os.path.join(WORK, "nat.json"), "w") as f:
        json.dump({"checks": checks, "ok": all(c["ok"] for c in checks)}, f, indent=1)
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
