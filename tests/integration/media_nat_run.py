"""media_nat_run.py: two real baresip phones, each behind its own NAT router (natnet.py, with
`masquerade random`), call each other through Parley, with rtpengine in the server namespace
as the media relay (issue 12). Run it inside `unshare -n -m` (a private network and mount
namespace): nothing it builds is visible outside or can reach a real network.

alice (ph1, behind rtr1) sends a 1000 Hz tone, bob (ph2, behind rtr2) a 600 Hz tone, PCMU.
Each phone's SDP names its private address, which the other phone cannot reach: audio can
only flow when Parley puts rtpengine (203.0.113.1, the "internet" side) in the path.

Scenarios (one namespace setup and one rtpengine for all; Parley restarted per --media):
  relay  --media auto: alice calls bob, talks, hangs up. Each phone's decoded recording holds
         the OTHER phone's tone; the ACK and BYE reach the phones; rtpengine holds the call
         while it is up and no longer after the BYE (ng `list` and `query`); Parley logs
         "media: ... relayed through udp:127.0.0.1:2223"; `parley calls` shows MEDIA `relay`.
  hold   --media auto: bob calls alice, puts her on hold and resumes (baresip's `hold` and
         `resume`: re-INVITEs with a=sendonly, then a=sendrecv); alice hangs up. baresip
         stops its recording at a re-INVITE that is not sendrecv, so RTP arriving at each
         phone after the resume is counted instead: an nftables counter in each router's
         forward chain (udp from the relay to the phone's RTP ports), read before and after.
  never  --media never: alice calls bob; the call connects and ends cleanly, but no RTP
         reaches either phone and neither recording holds the other's tone (the reason the
         relay exists); rtpengine holds no call; `parley calls` shows MEDIA `direct`.
  direct (with --no-nat, the control of never) the routers only route, to each other's LAN
         too, so the phones' own addresses work: the same call with --media never carries
         both tones phone to phone, so the silence in never is the NATs' doing and the
         counters and the tone check do see media when there is some.

usage: media_nat_run.py PARLEY_BIN WORKDIR [--scenarios relay,hold,never] [--no-media-flags]
       media_nat_run.py PARLEY_BIN WORKDIR --no-nat [--no-media-flags]
--no-media-flags runs Parley with no media flags at all (a binary from before issue 12 would
refuse them) and leaves out the checks of the MEDIA column and the relay's log line; with it,
"never" is what today's Parley does. Writes WORKDIR/media.json: {"checks": [...], "ok": bool};
exit 0 when every check holds.
"""
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import natnet  # noqa: E402
from baresip import Baresip, dominant_hz  # noqa: E402
from sipua import wait_for  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
ARGS = sys.argv[3:]
NAT = "--no-nat" not in ARGS
SCENARIOS = (ARGS[ARGS.index("--scenarios") + 1].split(",") if "--scenarios" in ARGS
             else ["relay", "hold", "never"] if NAT else ["direct"])
MEDIA_FLAGS = "--no-media-flags" not in ARGS
SRV_IP, SRV_PORT = "203.0.113.1", 5060
NG = ("127.0.0.1", 2223)
RTPENGINE_URI = "udp:127.0.0.1:2223"
TONE = {"alice": 1000, "bob": 600}
# baresip.py gives a phone on SIP port 5060 the RTP ports 26000-26099 (RTCP included).
RTP_PORTS = "26000-26099"
TALK_S = 3
checks = []


def check(name, ok, detail=""):
    checks.append({"check": name, "ok": bool(ok), "detail": detail})
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""), flush=True)
    return ok


# ---- bencode and rtpengine's ng control protocol ------------------------------------------

# The codec is ngpeer.py's (shared with test_media.py).
from ngpeer import bdecode, bencode  # noqa: E402


class Ng:
    """rtpengine's ng protocol over UDP: "COOKIE " + a bencoded dictionary each way. rtpengine
    caches replies by cookie, so every request needs a fresh one."""
    _seq = itertools.count(1)

    def __init__(self, ns, addr=NG):
        with natnet.netns(ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = addr

    def request(self, command, timeout=1.0, tries=3, **params):
        for _ in range(tries):
            cookie = f"mnr{os.getpid()}_{next(self._seq)}".encode()
            self.sock.sendto(cookie + b" " + bencode(dict(params, command=command)), self.addr)
            self.sock.settimeout(timeout)
            try:
                while True:
                    data, _ = self.sock.recvfrom(65535)
                    got, _, body = data.partition(b" ")
                    if got == cookie:
                        return bdecode(body)
            except socket.timeout:
                continue
        raise TimeoutError(f"rtpengine did not answer {command!r} on {self.addr}")

    def calls(self):
        """The call-ids rtpengine holds now (ng `list`)."""
        r = self.request("list", limit=1000)
        if r.get("result") != "ok":
            raise RuntimeError(f"list failed: {r}")
        return list(r.get("calls", []))

    def known(self, call_id):
        """Whether ng `query` knows the call-id."""
        return self.request("query", **{"call-id": call_id}).get("result") == "ok"

    def close(self):
        self.sock.close()


# ---- SIP traces of the phones (baresip -s) -----------------------------------------------

TRACE = re.compile(r"(?:UDP|TCP|TLS) (\S+) -> (\S+)[ \t]*\n")


def messages(phone, since=0):
    """The SIP messages in the phone's trace after log offset since: (src, dst, text) each."""
    log = phone.read_log()[since:].replace("\r", "")
    heads = list(TRACE.finditer(log))
    out = []
    for h, nxt in zip(heads, heads[1:] + [None]):
        out.append((h.group(1), h.group(2), log[h.end():nxt.start() if nxt else len(log)]))
    return out


def arrived(phone, since, first_line):
    """Messages arriving at the phone after since whose first line matches the regex."""
    return [m for m in messages(phone, since)
            if m[1].startswith(phone.host + ":") and re.match(first_line, m[2])]


def sdp_addr(text):
    m = re.search(r"^c=IN IP4 (\S+)", text, re.M)
    return m.group(1) if m else None


def sdp_dir(text):
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", text, re.M)
    return m.group(1) if m else "sendrecv"


def header(text, name):
    m = re.search(rf"^{name}:\s*(.+)$", text, re.M | re.I)
    return m.group(1).strip() if m else None


# ---- counters of RTP arriving at each phone (nftables in its router) ------------------------

def add_counters(topo):
    """In each router's forward chain: `from_relay` counts udp from the relay (the server's
    address) to the phone's RTP ports, `to_phone` the same from anywhere."""
    for p in topo["phones"].values():
        rules = ("table ip media {\n"
                 " counter from_relay { }\n"
                 " counter to_phone { }\n"
                 " chain rtp_in {\n"
                 "  type filter hook forward priority 0; policy accept;\n"
                 f"  ip saddr {SRV_IP} ip daddr {p['addr']} udp dport {RTP_PORTS} counter name from_relay\n"
                 f"  ip daddr {p['addr']} udp dport {RTP_PORTS} counter name to_phone\n"
                 " }\n"
                 "}\n")
        natnet.run_in(p["router"], "nft", "-f", "-", input=rules)


def counter(router, name):
    out = natnet.run_in(router, "nft", "list", "counter", "ip", "media", name)
    m = re.search(r"packets (\d+)", out)
    return int(m.group(1)) if m else -1


# ---- Parley --------------------------------------------------------------------------------

class Run:
    """One Parley (its own database and log) and two fresh phones registered with it."""

    def __init__(self, topo, name, media):
        self.name = name
        self.db = os.path.join(WORK, f"{name}.db")
        self.logpath = os.path.join(WORK, f"parley-{name}.log")
        self.log = open(self.logpath, "ab")
        flags = (["--rtpengine", RTPENGINE_URI, "--media", media] if MEDIA_FLAGS else [])
        try:
            self.proc = natnet.start_parley(BIN, "srv", SRV_IP, SRV_PORT, self.db, self.log, *flags)
        except RuntimeError as e:
            raise RuntimeError(f"{e}:\n{self.read_log()[-3000:]}") from e
        ph = topo["phones"]
        self.phones = {}
        for user, ns in (("alice", "ph1"), ("bob", "ph2")):
            subprocess.run([BIN, "user", "add", f"{user}@a.test", "--password", f"{user}pw", "--db", self.db],
                           check=True, capture_output=True)
            self.phones[user] = Baresip(WORK, f"{user}-{name}", user, "a.test", f"{user}pw", SRV_PORT,
                                        server_host=SRV_IP, answermode="auto", host=ph[ns]["addr"], netns=ns,
                                        sip_port=5060, ctrl_port=4444, tone_hz=TONE[user])
        for p in self.phones.values():
            p.start()
        for p in self.phones.values():
            p.wait_registered()

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def calls(self):
        return subprocess.run([BIN, "calls", "--db", self.db], capture_output=True, text=True).stdout

    def stop(self):
        """Phones first (they unregister through Parley), then Parley; checks its exit."""
        natnet.stop_phones(self.phones.values())
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        fatal = [m for m in ("ERROR: AddressSanitizer", "runtime error:") if m in self.read_log()]
        check(f"[{self.name}] parley exited cleanly", self.proc.returncode == 0 and not fatal,
              f"exit {self.proc.returncode} {fatal}")


def event(phone, etype, timeout):
    try:
        phone.wait_event(etype, timeout)
        return True
    except TimeoutError:
        return False


def recording(phone, before):
    """The decoded recording this call left (the newest one not in before), or None."""
    new = [r for r in phone.recordings("dec") if r not in before]
    return new[-1] if new else None


def hears(hz, want):
    return abs(hz - want) <= want // 10


def establish(tag, run, caller, callee, at):
    """caller dials callee (auto-answer). Returns the INVITE as the callee received it, or None."""
    for p in (caller, callee):
        p.events.clear()
    caller.command("dial", callee.aor)
    if not check(f"{tag}: answered (the caller has the callee's 200)", event(caller, "CALL_ESTABLISHED", 15)):
        return None
    got_ack = event(callee, "CALL_ESTABLISHED", 6)
    acks = arrived(callee, at[callee], r"ACK sip:")
    check(f"{tag}: the ACK reached the callee and its call is established", got_ack and acks,
          f"{callee.user}: CALL_ESTABLISHED {got_ack}, ACKs in its trace {len(acks)}")
    invites = arrived(callee, at[callee], r"INVITE sip:")
    return invites[0][2] if invites else None


def hang_up(tag, by, other, at):
    by.command("hangup")
    closed = event(other, "CALL_CLOSED", 10)
    byes = arrived(other, at[other], r"BYE sip:")
    check(f"{tag}: the BYE reached {other.user} and its call ended", closed and byes,
          f"{other.user}: CALL_CLOSED {closed}, BYEs in its trace {len(byes)}")
    event(by, "CALL_CLOSED", 5)


def relayed_sdp(tag, caller, callee, at, offer):
    """The SDP each phone received names the relay, not the other phone's private address."""
    answer = [m[2] for m in arrived(caller, at[caller], r"SIP/2\.0 200 ") if "\nc=IN" in m[2]]
    got = (sdp_addr(offer) if offer else None, sdp_addr(answer[0]) if answer else None)
    check(f"{tag}: the offer {callee.user} received and the answer {caller.user} received name the relay "
          f"{SRV_IP}", got == (SRV_IP, SRV_IP), f"c= lines (offer, answer): {got}")


def record_row(tag, run, caller, callee, want_media):
    """`parley calls` has the call answered and ended (records are written behind: wait for
    the end time); with media flags its MEDIA matches want_media."""
    pat = (rf"^{caller.user}@a\.test\s+{callee.user}@a\.test\s+\S+ \S+\s+\d\d:\d\d:\d\d\s+"
           rf"\d\d:\d\d:\d\d\s+answered \(200\)\s+\d+:\d\d")
    rows = wait_for(lambda: [ln for ln in run.calls().splitlines() if re.search(pat, ln)], 10) or []
    if not check(f"{tag}: `parley calls` records it answered and ended", len(rows) == 1,
                 f"rows {rows or run.calls().splitlines()}"):
        return None
    if MEDIA_FLAGS:
        m = re.search(want_media, rows[0])
        check(f"{tag}: `parley calls` MEDIA column matches {want_media!r}", m, f"row {rows[0]!r}")
        return m
    return None


def scenario_relay(run, ng, topo):
    alice, bob = run.phones["alice"], run.phones["bob"]
    tag = "relay (alice -> bob, alice hangs up)"
    at = {p: len(p.read_log()) for p in (alice, bob)}
    at_log = len(run.read_log())
    before = {p: p.recordings("dec") for p in (alice, bob)}
    offer = establish(tag, run, alice, bob, at)
    if offer is None:
        return
    call_id = header(offer, "Call-ID") or header(offer, "i")
    relayed_sdp(tag, alice, bob, at, offer)
    held = ng.calls()
    check(f"{tag}: rtpengine holds the call while it is up (ng list)", held, f"calls {held}, SIP Call-ID {call_id}")
    routers = {"alice": topo["phones"]["ph1"]["router"], "bob": topo["phones"]["ph2"]["router"]}
    first = {u: counter(r, "from_relay") for u, r in routers.items()}
    time.sleep(TALK_S)  # talk time: both tones flow through the relay
    then = {u: counter(r, "from_relay") for u, r in routers.items()}
    check(f"{tag}: RTP from the relay reached both phones (nft counters in the routers)",
          all(then[u] - first[u] >= 25 for u in routers), f"packets before {first}, after {then}")
    hang_up(tag, alice, bob, at)
    gone = wait_for(lambda: not (set(ng.calls()) & set(held)) and not any(ng.known(c) for c in held), 5)
    check(f"{tag}: after the BYE rtpengine no longer holds the call (ng list and query)", held and gone,
          f"held during the call {held}, now {ng.calls()}")
    time.sleep(0.5)  # the recordings are closed with the call
    for p, other in ((alice, bob), (bob, alice)):
        rec = recording(p, before[p])
        hz, secs = dominant_hz(rec) if rec else (0, 0.0)
        check(f"{tag}: {p.user}'s decoded recording holds {other.user}'s {TONE[other.user]} Hz tone",
              rec and secs >= 1.0 and hears(hz, TONE[other.user]), f"{rec}: {hz} Hz over {secs} s")
    if MEDIA_FLAGS:
        line = [ln for ln in run.read_log()[at_log:].splitlines()
                if "media:" in ln and f"relayed through {RTPENGINE_URI}" in ln]
        check(f"{tag}: Parley logs the call relayed through {RTPENGINE_URI}", line, f"{line[:2]}")
    m = record_row(tag, run, alice, bob, r"relay\b.*?(\d+)/(\d+) pkts")
    if m:
        check(f"{tag}: the relay counted packets both ways", int(m.group(1)) > 0 and int(m.group(2)) > 0,
              m.group(0))


def scenario_hold(run, ng, topo):
    alice, bob = run.phones["alice"], run.phones["bob"]
    routers = {"alice": topo["phones"]["ph1"]["router"], "bob": topo["phones"]["ph2"]["router"]}
    tag = "hold (bob -> alice, bob holds and resumes, alice hangs up)"
    at = {p: len(p.read_log()) for p in (alice, bob)}
    offer = establish(tag, run, bob, alice, at)
    if offer is None:
        return
    relayed_sdp(tag, bob, alice, at, offer)
    held = ng.calls()
    time.sleep(1)
    for step, want in (("hold", "sendonly"), ("resume", "sendrecv")):
        at_step = {p: len(p.read_log()) for p in (alice, bob)}
        bob.command(step)
        # The re-INVITE reaches alice with bob's direction, and bob has her 200 for it.
        reinv = wait_for(lambda: arrived(alice, at_step[alice], r"INVITE sip:"), 5) or []
        ok200 = wait_for(lambda: [m for m in arrived(bob, at_step[bob], r"SIP/2\.0 200 ")
                                  if re.search(r"^CSeq:\s*\d+ INVITE", m[2], re.M | re.I)], 5) or []
        acks = wait_for(lambda: arrived(alice, at_step[alice], r"ACK sip:"), 5) or []
        got = ([(sdp_addr(m[2]), sdp_dir(m[2])) for m in reinv], [(sdp_addr(m[2]), sdp_dir(m[2])) for m in ok200])
        check(f"{tag}: {step}: the re-INVITE ({want}) reached alice, bob got her 200, the ACK reached her",
              reinv and ok200 and acks and sdp_dir(reinv[0][2]) == want,
              f"re-INVITEs (c=, a=) {got[0]}, 200s {got[1]}, ACKs {len(acks)}")
        check(f"{tag}: {step}: the re-INVITE's offer and its answer name the relay {SRV_IP}",
              reinv and ok200 and sdp_addr(reinv[0][2]) == SRV_IP and sdp_addr(ok200[0][2]) == SRV_IP,
              f"c= (offer, answer): {got}")
        time.sleep(1)
    # After the resume: RTP from the relay keeps arriving at both phones.
    first = {u: counter(r, "from_relay") for u, r in routers.items()}
    time.sleep(TALK_S)
    then = {u: counter(r, "from_relay") for u, r in routers.items()}
    for u in ("alice", "bob"):
        check(f"{tag}: after the resume RTP from the relay still reaches {u} (nft counter in {routers[u]})",
              then[u] - first[u] >= 25, f"packets {first[u]} -> {then[u]}")
    now = ng.calls()
    check(f"{tag}: rtpengine still holds the one call after hold and resume", held and set(now) == set(held),
          f"before {held}, after {now}")
    hang_up(tag, alice, bob, at)
    gone = wait_for(lambda: not (set(ng.calls()) & set(held)) and not any(ng.known(c) for c in held), 5)
    check(f"{tag}: after the BYE rtpengine no longer holds the call", held and gone,
          f"held {held}, now {ng.calls()}")
    m = record_row(tag, run, bob, alice, r"relay\b.*?(\d+)/(\d+) pkts")
    if m:
        check(f"{tag}: the relay counted packets both ways", int(m.group(1)) > 0 and int(m.group(2)) > 0,
              m.group(0))


def scenario_never(run, ng, topo):
    """--media never. Behind NAT nothing can pass; without NAT (the control) the tones flow
    phone to phone."""
    alice, bob = run.phones["alice"], run.phones["bob"]
    routers = {"alice": topo["phones"]["ph1"]["router"], "bob": topo["phones"]["ph2"]["router"]}
    tag = "never (alice -> bob, alice hangs up)" if NAT else "direct (no NAT, --media never, alice -> bob)"
    at = {p: len(p.read_log()) for p in (alice, bob)}
    at_log = len(run.read_log())
    before = {p: p.recordings("dec") for p in (alice, bob)}
    first = {u: counter(r, "to_phone") for u, r in routers.items()}
    offer = establish(tag, run, alice, bob, at)
    if offer is None:
        return
    answer = [m[2] for m in arrived(alice, at[alice], r"SIP/2\.0 200 ") if "\nc=IN" in m[2]]
    got = (sdp_addr(offer), sdp_addr(answer[0]) if answer else None)
    check(f"{tag}: the SDP passes untouched (each side gets the other's private address)",
          got == (alice.host, bob.host), f"c= (offer, answer): {got}")
    held = ng.calls()
    check(f"{tag}: rtpengine holds no call", held == [], f"calls {held}")
    time.sleep(TALK_S)
    hang_up(tag, alice, bob, at)
    then = {u: counter(r, "to_phone") for u, r in routers.items()}
    if NAT:
        check(f"{tag}: no RTP reached either phone (nft counters in the routers)", then == first,
              f"packets before {first}, after {then}")
    else:
        check(f"{tag}: RTP reached both phones (nft counters in the routers)",
              all(then[u] - first[u] >= 25 for u in routers), f"packets before {first}, after {then}")
    time.sleep(0.5)
    for p, other in ((alice, bob), (bob, alice)):
        rec = recording(p, before[p])
        hz, secs = dominant_hz(rec) if rec else (0, 0.0)
        heard = secs >= 0.5 and hears(hz, TONE[other.user])
        if NAT:
            check(f"{tag}: {p.user}'s decoded recording holds no {TONE[other.user]} Hz tone from {other.user}",
                  not heard, f"{rec}: {hz} Hz over {secs} s")
        else:
            check(f"{tag}: {p.user}'s decoded recording holds {other.user}'s {TONE[other.user]} Hz tone",
                  rec and secs >= 1.0 and heard, f"{rec}: {hz} Hz over {secs} s")
    if MEDIA_FLAGS:
        line = [ln for ln in run.read_log()[at_log:].splitlines() if "relayed through" in ln]
        check(f"{tag}: Parley logs no relayed call", not line, f"{line[:2]}")
    record_row(tag, run, alice, bob, r"\bdirect\b")


def probe_ng(ng):
    """The control for the checks that a call is gone: a call the test offers itself shows in
    ng `list` and `query`, and is gone from both after its `delete`."""
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {SRV_IP}\r\ns=-\r\nc=IN IP4 {SRV_IP}\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\n")
    cid = f"probe-{os.getpid()}"
    offer = ng.request("offer", **{"call-id": cid, "from-tag": "probe", "sdp": sdp})
    during = (cid in ng.calls(), ng.known(cid))
    deleted = ng.request("delete", **{"call-id": cid, "from-tag": "probe"}).get("result")
    after = (cid in ng.calls(), ng.known(cid))
    check("ng list and query see a call the test offers and lose it after its delete",
          offer.get("result") == "ok" and during == (True, True) and deleted == "ok" and after == (False, False),
          f"offer {offer.get('result')}, (listed, known) during {during}, delete {deleted}, after {after}")


def start_rtpengine():
    log = open(os.path.join(WORK, "rtpengine.log"), "ab")
    proc = natnet.popen_in("srv", ["rtpengine", f"--interface={SRV_IP}", f"--listen-ng={NG[0]}:{NG[1]}",
                                   "--foreground", "--log-stderr", "--table=-1", "--port-min=30000",
                                   "--port-max=30200", "--delete-delay=0"],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, log


def main():
    natnet.private_netns_dir()
    topo = natnet.build_two_nats(SRV_IP, nat=NAT)
    if not NAT:  # each router also routes to the other's LAN: direct media can flow
        natnet.run_in("rtr1", "ip", "route", "add", "192.168.72.0/24", "via", topo["phones"]["ph2"]["public"])
        natnet.run_in("rtr2", "ip", "route", "add", "192.168.71.0/24", "via", topo["phones"]["ph1"]["public"])
    add_counters(topo)
    rtp, rtp_log = start_rtpengine()
    ng = Ng("srv")
    run = None
    try:
        def pong():
            try:
                return ng.request("ping", timeout=0.3, tries=1).get("result") == "pong"
            except TimeoutError:
                return False
        if not check("rtpengine answers ping in the server namespace", wait_for(pong, 10)):
            raise RuntimeError("no rtpengine")
        check("rtpengine holds no call at the start", ng.calls() == [], "")
        probe_ng(ng)
        groups = [("auto", [s for s in SCENARIOS if s in ("relay", "hold")]),
                  ("never", [s for s in SCENARIOS if s in ("never", "direct")])]
        for media, todo in groups:
            if not todo:
                continue
            run = Run(topo, media, media)
            for s in todo:
                try:
                    {"relay": lambda: scenario_relay(run, ng, topo),
                     "hold": lambda: scenario_hold(run, ng, topo),
                     "never": lambda: scenario_never(run, ng, topo),
                     "direct": lambda: scenario_never(run, ng, topo)}[s]()
                except Exception as e:  # noqa: BLE001 -- a failed check, the other scenarios still run
                    check(f"{s} ran to the end", False, f"{type(e).__name__}: {e}")
                for p in run.phones.values():  # no call left over for the next scenario
                    if p.proc.poll() is None:
                        p.command("hangup")
            run.stop()
            run = None
    except Exception as e:  # noqa: BLE001 -- reported as a failed check, with the logs kept
        check("scenarios ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        if run is not None:
            run.stop()
        ng.close()
        rtp.terminate()
        try:
            rtp.wait(10)
        except subprocess.TimeoutExpired:
            rtp.kill()
            rtp.wait()
        rtp_log.close()
        natnet.tear_down()
    with open(os.path.join(WORK, "media.json"), "w") as f:
        json.dump({"checks": checks, "ok": all(c["ok"] for c in checks)}, f, indent=1)
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
