"""test_browser.py: browser phones (issue 13): JsSIP in headless Chromium registered over SIP
over WebSocket, calling each other through Parley with WebRTC audio from Chromium's fake
microphone (a 1000 Hz tone), and calling a baresip phone on UDP both ways with the audio
relayed and converted by rtpengine (`--media auto`: a WebRTC leg and a plain RTP leg).

One private network namespace with only loopback holds everything for the module (browser.py):
one Chromium with two tabs reused by every test, one Parley (UDP and ws: listeners, rtpengine
as its relay), one rtpengine; each test has fresh users, so nothing one leaves behind (a
binding, a call) meets the next. Audio is proven by the callee's getStats() (inbound audio
packets growing, DTLS connected, the selected candidate pair succeeded), by what the browser
hears (Web Audio: the other phone's tone), and by the tone in baresip's recording."""
import itertools
import os
import re
import subprocess
import time

import pytest

from baresip import Baresip, dominant_hz
from browser import Browser, NetNs, NsServer, Phone
from conftest import BIN, call_records, wait_for
from ngpeer import ng

SIP_PORT = 5060
# The listeners per transport the browser phones use: scheme of the URL, Parley's --listen.
# wss (a certificate for Parley and its key's hash for Chromium's
# --ignore-certificate-errors-spki-list, Browser(spki=...)) joins this table when Parley has TLS.
TRANSPORTS = {"ws": ("ws", f"ws:127.0.0.1:{SIP_PORT + 5}")}
NG = ("127.0.0.1", 2223)
# rtpengine's ports, below the kernel's ephemeral range (Chromium's own ports) and baresip's.
RTP_MIN, RTP_MAX = 30000, 30199
BROWSER_HZ = 1000  # Chromium's fake microphone
BARESIP_HZ = 600
TALK_S = 3
_users = itertools.count(1)


def hears(hz, want):
    return abs(hz - want) <= want * 0.1


class Lab:
    """What the module shares: the namespace, rtpengine, Parley, the browser."""

    def __init__(self, work, transport):
        self.work = str(work)
        self.ns = NetNs()
        self.rtpengine = self.server = self.browser = None
        self.scheme, listen = TRANSPORTS[transport]
        self.ws_url = f"{self.scheme}://{listen.split(':', 1)[1]}"
        try:
            self.start_rtpengine()
            self.server = NsServer(self.ns, self.work, listens=[listen], port=SIP_PORT,
                                   extra=["--rtpengine", f"udp:{NG[0]}:{NG[1]}", "--media", "auto"])
            try:
                self.server.start()
            except RuntimeError as e:
                if "is not available yet" in str(e):
                    self.server.stop()
                    self.server = None
                    pytest.skip(f"this parley has no {transport}: listener yet: {e}")
                raise
            self.browser = Browser(self.ns, self.work, tone_hz=BROWSER_HZ)
        except BaseException:
            self.close()
            raise

    def start_rtpengine(self):
        self.rtp_log = open(os.path.join(self.work, "rtpengine.log"), "ab")
        self.rtpengine = subprocess.Popen(
            self.ns.cmd("rtpengine", "--config-file=none", "--interface=127.0.0.1", f"--listen-ng={NG[0]}:{NG[1]}",
                        "--foreground", "--log-stderr", "--table=-1", "--delete-delay=0",
                        f"--port-min={RTP_MIN}", f"--port-max={RTP_MAX}"),
            stdout=self.rtp_log, stderr=subprocess.STDOUT)

        def pong():
            with self.ns.enter():
                r = ng(NG, "ping", timeout=0.3)
            return r is not None and r.get("result") == "pong"
        if not wait_for(pong, 10):
            raise RuntimeError("rtpengine did not answer ping in the namespace")

    def rtp_calls(self):
        with self.ns.enter():
            r = ng(NG, "list")
        return list(r.get("calls", [])) if r else None

    def users(self, *names):
        """Fresh users (a number appended per test), each added with password "pw"."""
        n = next(_users)
        out = []
        for name in names:
            user = f"{name}{n}"
            self.server.user_add(f"{user}@a.test", "pw")
            out.append(user)
        return out

    def phone(self, page, user):
        """A JsSIP phone for user in the tab page, registered over the WebSocket."""
        p = Phone(self.browser, page, self.ws_url, user, "a.test", "pw")
        ev = p.register()
        assert ev["status"] == 200, ev
        return p

    def baresip(self, user, port):
        """A baresip phone for user on UDP in the namespace (its SIP port and ctrl_tcp port
        given: nothing else is bound there), answering by hand, sending BARESIP_HZ."""
        b = Baresip(self.work, user, user, "a.test", "pw", SIP_PORT, netns=self.ns.path, sip_port=port,
                    ctrl_port=port + 1000, tone_hz=BARESIP_HZ)
        b.start()
        b.wait_registered()
        return b

    def close(self):
        if self.browser:
            self.browser.close()
        problems = []
        if self.server and self.server.proc:
            rc = self.server.stop()
            log = self.server.read_log()
            if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
                problems.append(f"parley exited {rc}:\n{log[-4000:]}")
        if self.rtpengine:
            self.rtpengine.terminate()
            try:
                self.rtpengine.wait(10)
            except subprocess.TimeoutExpired:
                self.rtpengine.kill()
                self.rtpengine.wait()
            self.rtp_log.close()
        self.ns.close()
        assert not problems, problems[0]


@pytest.fixture(scope="module", params=list(TRANSPORTS))
def lab(request, tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp(f"browser_{request.param}"), request.param)
    yield lab
    lab.close()


@pytest.fixture
def two(lab):
    """Two browser phones registered over the WebSocket: (caller, callee)."""
    a, b = lab.users("alice", "bob")
    phones = [lab.phone("left", a), lab.phone("right", b)]
    yield phones
    for p in phones:
        p.stop()


def record(lab, want):
    """The line of `parley calls` that matches every word in want (records are written behind)."""
    def find():
        return [ln for ln in call_records(lab.server).splitlines() if all(w in ln for w in want)]
    rows = wait_for(find, 10)
    assert rows, f"no call record with {want}:\n{call_records(lab.server)}"
    return rows[0]


def ring(caller, callee):
    """caller calls callee; the callee's tab sees the INVITE, the caller hears 180 Ringing."""
    caller.call(f"sip:{callee.user}@a.test")
    ev = callee.next("newSession")
    assert ev["originator"] == "remote" and caller.user in ev["from"], ev
    assert caller.next("progress")["status"] == 180


def assert_webrtc_up(phone, stats):
    assert stats["dtls"] == "connected", f"{phone.user}: DTLS {stats}"
    assert stats["pair"] == "succeeded", f"{phone.user}: candidate pair {stats}"
    assert stats["inbound"]["totalAudioEnergy"] > 0, f"{phone.user}: only silence arrived: {stats}"


def test_registered_over_websocket(lab, two):
    """Both phones registered over the WebSocket: `parley reg list` shows each binding with
    transport WS and JsSIP's own Contact (an unreachable `....invalid;transport=ws`)."""
    def listed(user):
        out = subprocess.run([BIN, "reg", "list", "--db", lab.server.db], capture_output=True, text=True).stdout
        return [ln for ln in out.splitlines() if f"{user}@a.test" in ln]
    for p in two:
        rows = wait_for(lambda: listed(p.user), 10)
        assert rows, f"{p.user} not in reg list"
        assert " WS" in rows[0] and ".invalid;transport=ws" in rows[0], rows
    assert "bytes over WS: REGISTER sip:a.test" in lab.server.read_log()


def test_two_browsers_call_with_audio(lab, two):
    """alice calls bob, both browsers; bob answers: each one's getStats() shows the other's
    audio arriving (packets growing, DTLS connected, a succeeded candidate pair, not silence)
    and bob hears alice's 1000 Hz; alice hangs up with a BYE that ends bob's call too. The
    media stays browser to browser (--media auto relays no call between two WebRTC phones)."""
    alice, bob = two
    ring(alice, bob)
    bob.answer()
    assert alice.next("confirmed")
    assert bob.next("confirmed")
    _, later = bob.inbound_growing()
    assert_webrtc_up(bob, later)
    _, later = alice.inbound_growing()
    assert_webrtc_up(alice, later)
    heard = bob.tone()
    assert heard and hears(heard["hz"], BROWSER_HZ), f"bob heard {heard}, not alice's {BROWSER_HZ} Hz"
    alice.terminate()
    assert bob.next("ended")["originator"] == "remote"
    assert alice.next("ended")["originator"] == "local"
    row = record(lab, [f"{alice.user}@a.test", f"{bob.user}@a.test", "200"])
    assert "direct" in row, row


def test_callee_hangs_up(lab, two):
    """The BYE from the callee's browser: it goes to the caller's Contact (JsSIP's `.invalid`
    one), which Parley reaches over the caller's WebSocket; the caller's call ends, and it
    had bob's audio while it lasted."""
    alice, bob = two
    ring(alice, bob)
    bob.answer()
    assert bob.next("confirmed")
    assert alice.next("confirmed")
    _, later = alice.inbound_growing()
    assert_webrtc_up(alice, later)
    bob.terminate()
    assert alice.next("ended")["originator"] == "remote"
    assert bob.next("ended")["originator"] == "local"
    record(lab, [f"{alice.user}@a.test", f"{bob.user}@a.test", "200"])


def test_browser_busy(lab, two):
    """bob's browser rejects the call with 486 Busy Here: alice's fails with 486."""
    alice, bob = two
    ring(alice, bob)
    bob.reject(486, "Busy Here")
    ev = alice.next("failed")
    assert ev["status"] == 486 and ev["originator"] == "remote", ev
    assert bob.next("failed")["originator"] == "local"
    record(lab, [f"{alice.user}@a.test", f"{bob.user}@a.test", "486"])


def test_browser_cancel(lab, two):
    """alice hangs up while bob's browser rings: the CANCEL reaches bob (his call fails,
    Canceled by the remote side) and alice's INVITE ends with 487."""
    alice, bob = two
    ring(alice, bob)
    alice.terminate()
    ev = bob.next("failed")
    assert ev["originator"] == "remote" and ev["cause"] == "Canceled", ev
    ev = alice.next("failed")
    assert ev["cause"] == "Canceled", ev
    record(lab, [f"{alice.user}@a.test", f"{bob.user}@a.test", "487"])


def relayed_audio_both_ways(lab, browser, phone, hang_up):
    """The call between the browser and baresip is up: the browser's media goes to rtpengine
    (its selected remote candidate is one of rtpengine's ports), the browser receives audio
    and hears baresip's tone; after TALK_S hang_up() ends it, baresip's decoded recording holds
    the browser's tone and the call record counts relayed packets both ways."""
    _, later = browser.inbound_growing()
    assert_webrtc_up(browser, later)
    rc = later["remoteCandidate"]
    assert rc and RTP_MIN <= rc["port"] <= RTP_MAX, f"the browser's media goes to {rc}, not rtpengine"
    assert later["codec"] == "audio/PCMU", later
    heard = browser.tone()
    assert heard and hears(heard["hz"], BARESIP_HZ), f"the browser heard {heard}, not baresip's {BARESIP_HZ} Hz"
    assert lab.rtp_calls(), "rtpengine holds no call"
    time.sleep(TALK_S)  # talk time: the browser's tone fills baresip's recording
    hang_up()
    recs = wait_for(lambda: phone.recordings("dec"), 15)  # a fresh phone: this call's only one
    assert recs, "baresip recorded nothing"
    hz, secs = dominant_hz(recs[-1])
    assert secs >= 1.0 and hears(hz, BROWSER_HZ), f"baresip heard {hz} Hz over {secs} s, not {BROWSER_HZ} Hz"
    assert wait_for(lambda: lab.rtp_calls() == [], 5), f"rtpengine still holds {lab.rtp_calls()}"


def assert_relayed_both_ways(row):
    """The MEDIA column of a call record: rtpengine counted packets from the caller and from
    the callee (`relay udp:H:P N/M pkts`)."""
    m = re.search(r"relay \S+ (\d+)/(\d+) pkts", row)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, f"not relayed both ways: {row}"


def test_browser_calls_baresip_relayed(lab):
    """alice in the browser calls bob's baresip (UDP, plain RTP/AVP): Parley puts rtpengine in
    the path (a WebRTC leg and a plain one); audio both ways; alice hangs up."""
    a, b = lab.users("alice", "bob")
    alice = lab.phone("left", a)
    bob = lab.baresip(b, 5070)
    try:
        alice.call(f"sip:{b}@a.test")
        bob.wait_event("CALL_INCOMING")
        assert alice.next("progress")["status"] == 180
        bob.command("accept")
        bob.wait_event("CALL_ESTABLISHED")
        assert alice.next("confirmed")

        def hang_up():
            alice.terminate()
            bob.wait_event("CALL_CLOSED")
            assert alice.next("ended")["originator"] == "local"
        relayed_audio_both_ways(lab, alice, bob, hang_up)
        assert_relayed_both_ways(record(lab, [f"{a}@a.test", f"{b}@a.test", "200", "relay", "pkts"]))
        assert "relayed through" in lab.server.read_log()
    finally:
        alice.stop()
        bob.stop()


def test_baresip_calls_browser_relayed(lab):
    """bob's baresip (UDP) calls alice in the browser, who answers: the plain RTP offer is
    turned into WebRTC for her, audio both ways through rtpengine; bob hangs up."""
    a, b = lab.users("alice", "bob")
    alice = lab.phone("right", a)
    bob = lab.baresip(b, 5072)
    try:
        bob.command("dial", f"sip:{a}@a.test")
        ev = alice.next("newSession")
        assert ev["originator"] == "remote", ev
        bob.wait_event("CALL_RINGING")
        alice.answer()
        bob.wait_event("CALL_ESTABLISHED")
        assert alice.next("confirmed")

        def hang_up():
            bob.command("hangup")
            bob.wait_event("CALL_CLOSED")
            assert alice.next("ended")["originator"] == "remote"
        relayed_audio_both_ways(lab, alice, bob, hang_up)
        assert_relayed_both_ways(record(lab, [f"{b}@a.test", f"{a}@a.test", "200", "relay", "pkts"]))
    finally:
        alice.stop()
        bob.stop()
