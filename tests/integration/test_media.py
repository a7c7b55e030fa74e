"""test_media.py: the media relay through rtpengine (issue 12) with real rtpengines on loopback
and Python phones: a browser's WebRTC offer to a plain phone, the --media policies, SDP
rewritten both ways (early and late offer, a callee's hold re-INVITE, a forked call with two
early dialogs), calls that end without an answer, and the faults: no rtpengine, one killed
mid-call, one that never answers, bad SDP, and two rtpengines of which one is dead."""
import re
import socket
import struct

import pytest

from conftest import add_users, calls_table, phones, wait_for, wait_log
from ngpeer import Rtpengine, Sdp, SilentPeer, dead_port, plain_sdp, webrtc_sdp
from sipua import UA, Call, callee_answer, is_req, is_resp, rand, uri_of

# The phones' own media ports: below the kernel's ephemeral range and every rtpengine's range,
# so a port in a relayed SDP can only be rtpengine's.
ALICE_RTP, BOB_RTP, BOB2_RTP = 16000, 18000, 18100
RELAY_LINE = "relayed through "
# The loss figure comes only with the phones' RTCP (rtpengine measures it per SSRC).
MEDIA_RELAY = r"relay (?:\S+ )?(\d+)/(\d+) pkts(?:, [\d.]+% loss)?"


# ---- the caller's and callee's sides with SDP of our choosing ------------------------------

class MediaCall(Call):
    """Call with a body of the test's choosing (None: an INVITE without SDP, a late offer) and an
    ACK that can carry the answer."""

    def __init__(self, ua, target, body):
        super().__init__(ua, target)
        self.body = body
        if body is None:
            self.headers = []

    def _send(self, extra=()):
        self.ua.cseq += 1
        self.cseq = self.ua.cseq
        self.branch = "z9hG4bK" + rand(12)
        self.ua.send_raw(self.ua.build("INVITE", self.target, headers=self.headers + list(extra),
                                       body=self.body or b"", to=self.to, call_id=self.call_id,
                                       cseq=self.cseq, branch=self.branch))

    def ack(self, body=None):
        headers = [f"Route: {', '.join(self.route)}"] if self.route else []
        if body:
            headers.append("Content-Type: application/sdp")
        self.ua.send_raw(self.ua.build("ACK", self.remote_target, to=self.to, call_id=self.call_id,
                                       cseq=self.cseq, contact=False, headers=headers, body=body or b""))

    def bye(self):
        """alice hangs up; returns the final response to her BYE."""
        return self.in_dialog("BYE")


def ring_media(caller, phones_, body, target="sip:bob@a.test", timeout=5):
    """caller sends INVITE with body (authenticated) and each phone gets it. Returns (call, INVITEs)."""
    c = MediaCall(caller, target, body)
    r = c.start()
    assert r is None, f"INVITE answered {r.status} {r.reason}" if r else "no 407"
    invs = [p.recv(timeout, is_req("INVITE")) for p in phones_]
    assert None not in invs, "a callee's phone got no INVITE"
    return c, invs


def answer(callee, inv, tag, body, status=200, reason="OK"):
    callee_answer(callee, inv, status, reason, tag, body.encode() if isinstance(body, str) else body)


def bye_both_ways(c, callee):
    """alice's BYE reaches the callee, who answers 200; alice gets the 200."""
    c.ua.cseq += 1
    c.ua.send_raw(c.ua.build("BYE", c.remote_target, to=c.to, call_id=c.call_id, cseq=c.ua.cseq,
                             contact=False, headers=[f"Route: {', '.join(c.route)}"] if c.route else []))
    bye = callee.recv(5, is_req("BYE"))
    assert bye is not None, "the BYE did not reach the callee"
    callee.reply(bye, 200, "OK")
    r = c.ua.final(5, cseq_method="BYE")
    assert r is not None and r.status == 200, r
    return bye


def plain_call(alice, bob, offer=None, answer_sdp=None, bye=True):
    """alice calls bob with SDP both ways (plain ones on ALICE_RTP and BOB_RTP unless given):
    answered, ACK delivered, and by default hung up. Returns (INVITE at bob, 200 at alice,
    call, bob's tag)."""
    c, (inv,) = ring_media(alice, [bob], offer or plain_sdp(ALICE_RTP))
    tag = rand(8)
    answer(bob, inv, tag, answer_sdp or plain_sdp(BOB_RTP))
    r = c.final()
    assert r is not None and r.status == 200, r
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    if bye:
        bye_both_ways(c, bob)
    return inv, r, c, tag


def callee_reinvite(ua, inv, tag, cseq, body):
    """The callee sends a re-INVITE inside the dialog (route: the INVITE's Record-Route in order)."""
    route = inv.all("record-route")
    branch = "z9hG4bK" + rand(12)
    lines = [f"INVITE {uri_of(inv.get('contact'))} SIP/2.0",
             f"Via: SIP/2.0/UDP {ua.hostport};branch={branch};rport",
             f"From: {inv.get('to')};tag={tag}", f"To: {inv.get('from')}",
             f"Call-ID: {inv.get('call-id')}", f"CSeq: {cseq} INVITE", "Max-Forwards: 70",
             f"Contact: <sip:{ua.user}@{ua.hostport}>", "Content-Type: application/sdp"]
    if route:
        lines.append(f"Route: {', '.join(route)}")
    lines.append(f"Content-Length: {len(body)}")
    ua.send_raw(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


def callee_ack(ua, inv, tag, cseq, remote_target):
    route = inv.all("record-route")
    lines = [f"ACK {remote_target} SIP/2.0",
             f"Via: SIP/2.0/UDP {ua.hostport};branch=z9hG4bK{rand(12)};rport",
             f"From: {inv.get('to')};tag={tag}", f"To: {inv.get('from')}",
             f"Call-ID: {inv.get('call-id')}", f"CSeq: {cseq} ACK", "Max-Forwards: 70"]
    if route:
        lines.append(f"Route: {', '.join(route)}")
    lines.append("Content-Length: 0")
    ua.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())


# ---- what an SDP should look like -------------------------------------------------------------

def body_ok(m):
    """The message's Content-Length is its body's length (a rewritten SDP must fix it)."""
    assert int(m.get("content-length", "-1")) == len(m.body), \
        f"Content-Length {m.get('content-length')} but the body is {len(m.body)} bytes"
    return Sdp(m.body)


def assert_relayed(m, rtpe, phone_port, phone_addr="127.0.0.1"):
    """m's SDP names rtpengine (its address, a port it opened for a call it holds), not the
    phone it came from."""
    assert m.body, f"no SDP in {m.start}"
    sdp = body_ok(m)
    a = sdp.audio
    assert sdp.addr() == "127.0.0.1", f"c= is {sdp.addr()}, not rtpengine's:\n{sdp.text}"
    assert a["port"] != phone_port or sdp.addr() != phone_addr, f"SDP not rewritten:\n{sdp.text}"
    assert rtpe.owns(a["port"]), f"m= port {a['port']} outside rtpengine's {rtpe.port_min}-{rtpe.port_max}"
    ports = rtpe.all_local_ports()
    assert a["port"] in ports, f"m= port {a['port']} is not one rtpengine opened ({sorted(ports)})"
    return sdp


def assert_direct(m, phone_port, phone_addr="127.0.0.1"):
    sdp = body_ok(m)
    assert (sdp.addr(), sdp.audio["port"]) == (phone_addr, phone_port), f"SDP was rewritten:\n{sdp.text}"
    return sdp


def log_lines(server, level, *words):
    """The log lines at level (text format: 'TS LEVEL event: msg') that contain every word."""
    out = []
    for ln in server.read_log().splitlines():
        f = ln.split(None, 2)
        if len(f) >= 2 and f[1] == level and all(w in ln for w in words):
            out.append(ln)
    return out


def wait_warn(server, *words, timeout=5.0):
    got = wait_for(lambda: log_lines(server, "warn", *words), timeout=timeout)
    assert got, f"no warn line with {words}:\n{server.read_log()[-3000:]}"
    return got


def options_answered(server):
    ua = UA(server.addr)
    try:
        ua.send_raw(ua.build("OPTIONS", f"sip:{server.host}:{server.port}", contact=False))
        r = ua.final(3)
        return r is not None and r.status < 500
    finally:
        ua.close()


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def rtpe(tmp_path):
    r = Rtpengine(str(tmp_path)).start()
    yield r
    r.stop()


@pytest.fixture
def media_server(server_factory):
    """media_server(*rtpengine specs, media=..., extra=[...]) starts Parley with those relays."""
    def make(*specs, media="always", extra=()):
        args = []
        for s in specs:
            args += ["--rtpengine", s]
        args += ["--media", media] + list(extra)
        return server_factory(extra=args).start()
    return make


# ---- 0. the helpers against rtpengine itself ----------------------------------------------------

def test_ng_helper_against_rtpengine(rtpe):
    """ngpeer speaks ng: a WebRTC offer with the flags a relay uses becomes plain RTP/AVP, the
    plain answer comes back SAVPF with ICE and a fingerprint; list, query and delete agree."""
    from ngpeer import bdecode, bencode
    v = {"command": "offer", "flags": ["a", "b"], "n": 3, "nested": {"x": [1, "y"]}}
    assert bdecode(bencode(v)) == v
    assert rtpe.calls() == []
    o = rtpe.command("offer", **{"call-id": "c1", "from-tag": "ft", "sdp": webrtc_sdp(ALICE_RTP),
                                 "transport-protocol": "RTP/AVP", "ICE": "remove", "rtcp-mux": ["demux"]})
    assert o["result"] == "ok", o
    s = Sdp(o["sdp"])
    assert s.audio["proto"] == "RTP/AVP" and not s.has_attr("ice-ufrag") and not s.has_attr("fingerprint")
    assert rtpe.owns(s.audio["port"])
    a = rtpe.command("answer", **{"call-id": "c1", "from-tag": "ft", "to-tag": "tt", "sdp": plain_sdp(BOB_RTP)})
    s = Sdp(a["sdp"])
    assert s.audio["proto"] == "UDP/TLS/RTP/SAVPF" and s.has_attr("ice-ufrag") and s.has_attr("fingerprint")
    assert rtpe.calls() == ["c1"] and s.audio["port"] in rtpe.local_ports("c1")
    assert rtpe.command("delete", **{"call-id": "c1", "from-tag": "ft"})["result"] == "ok"
    assert rtpe.wait_no_calls() == []


# ---- 1. WebRTC to a plain phone ------------------------------------------------------------------

def test_webrtc_caller_to_plain_phone(media_server, rtpe):
    server = media_server(rtpe.spec, media="auto")
    alice, bob = phones(server, "alice", "bob")
    c, (inv,) = ring_media(alice, [bob], webrtc_sdp(ALICE_RTP))
    # bob, a plain phone registered over UDP, gets plain RTP/AVP from rtpengine.
    sdp = assert_relayed(inv, rtpe, ALICE_RTP)
    assert sdp.audio["proto"] == "RTP/AVP", sdp.text
    assert "SAVP" not in sdp.text
    for attr in ("ice-ufrag", "ice-pwd", "candidate", "fingerprint"):
        assert not sdp.has_attr(attr), f"a={attr} left in the plain offer:\n{sdp.text}"
    tag = rand(8)
    answer(bob, inv, tag, "", 180, "Ringing")
    answer(bob, inv, tag, plain_sdp(BOB_RTP))
    r = c.final()
    assert r is not None and r.status == 200, r
    # alice, the browser, gets SAVPF with ICE and a DTLS fingerprint back.
    sdp = assert_relayed(r, rtpe, BOB_RTP)
    assert sdp.audio["proto"] == "UDP/TLS/RTP/SAVPF", sdp.text
    for attr in ("ice-ufrag", "ice-pwd", "candidate", "fingerprint"):
        assert sdp.has_attr(attr), f"no a={attr} in the answer to the browser:\n{sdp.text}"
    # An answer to actpass takes a DTLS role (RFC 5763 section 5).
    assert {"setup:active", "setup:passive"} & set(sdp.attrs), sdp.text
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    assert len(rtpe.calls()) == 1
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == [], "rtpengine still holds the call after the BYE"
    wait_log(server, "call: ended alice@a.test -> bob@a.test")
    # The relay is logged (at info, by the end of the call at the latest).
    assert wait_for(lambda: log_lines(server, "info", "media:", RELAY_LINE + rtpe.spec)), \
        server.read_log()[-3000:]


# ---- the --media policies ------------------------------------------------------------------------

def test_auto_plain_phones_on_loopback_go_direct(media_server, rtpe):
    """Two plain phones whose SDP says where they send from: not behind NAT, same kind: no relay."""
    server = media_server(rtpe.spec, media="auto")
    alice, bob = phones(server, "alice", "bob")
    inv, r, _, _ = plain_call(alice, bob)
    assert_direct(inv, ALICE_RTP)
    assert_direct(r, BOB_RTP)
    assert rtpe.calls() == []
    assert RELAY_LINE not in server.read_log()
    out = calls_table(server, r"alice@a\.test\s+bob@a\.test.*answered \(200\)")
    assert "direct" in out, out


def test_auto_caller_behind_nat_is_relayed(media_server, rtpe):
    """A caller whose SDP names a private address it does not send from is behind NAT: relayed."""
    server = media_server(rtpe.spec, media="auto")
    alice, bob = phones(server, "alice", "bob")
    inv, r, c, _ = plain_call(alice, bob, offer=plain_sdp(ALICE_RTP, addr="192.168.1.50"), bye=False)
    sdp = assert_relayed(inv, rtpe, ALICE_RTP, phone_addr="192.168.1.50")
    assert not [ln for ln in sdp.lines if ln.startswith("c=") and "192.168.1.50" in ln], sdp.text
    assert_relayed(r, rtpe, BOB_RTP)
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == []


def test_auto_callee_behind_nat_is_relayed(media_server, rtpe):
    """bob registered a private Contact (from loopback): behind NAT, so his calls are relayed
    although both SDPs say 127.0.0.1."""
    server = media_server(rtpe.spec, media="auto")
    alice, = phones(server, "alice")
    add_users(server, "bob")
    bob = server.ua("bob", "pw")
    r = bob.register(contact="<sip:bob@192.168.1.60:5060>")
    assert r is not None and r.status == 200
    inv, r, c, _ = plain_call(alice, bob, bye=False)
    assert_relayed(inv, rtpe, ALICE_RTP)
    assert_relayed(r, rtpe, BOB_RTP)
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == []


def test_never_relays_even_behind_nat(media_server, rtpe):
    server = media_server(rtpe.spec, media="never")
    alice, bob = phones(server, "alice", "bob")
    inv, r, _, _ = plain_call(alice, bob, offer=plain_sdp(ALICE_RTP, addr="192.168.1.50"))
    assert_direct(inv, ALICE_RTP, "192.168.1.50")
    assert_direct(r, BOB_RTP)
    assert RELAY_LINE not in server.read_log() and rtpe.calls() == []


# ---- 2. --media always ---------------------------------------------------------------------------

def rtp_packet(seq, ssrc=0x1234ABCD):
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + b"\xff" * 160


def test_always_rewrites_both_ways_and_relays_rtp(media_server, rtpe):
    """A plain call with SDP both ways: each side sees only rtpengine; RTP alice sends to the
    port she was given reaches bob's real port; `parley calls` shows the relay."""
    server = media_server(rtpe.spec)
    alice, bob = phones(server, "alice", "bob")
    a_rtp, b_rtp = udp_sockets(2)
    a_port, b_port = a_rtp.getsockname()[1], b_rtp.getsockname()[1]
    try:
        inv, r, c, _ = plain_call(alice, bob, offer=plain_sdp(a_port), answer_sdp=plain_sdp(b_port), bye=False)
        assert_relayed(inv, rtpe, a_port)
        to_bob = assert_relayed(r, rtpe, b_port).audio["port"]
        # Media really goes through: 50 packets alice -> rtpengine -> bob.
        b_rtp.settimeout(0.2)
        got = 0
        for i in range(50):
            a_rtp.sendto(rtp_packet(i), ("127.0.0.1", to_bob))
            try:
                data, src = b_rtp.recvfrom(2048)
                got += 1
                assert rtpe.owns(src[1]), f"RTP reached bob from {src}, not from rtpengine"
            except socket.timeout:
                pass
        assert got >= 40, f"only {got} of 50 RTP packets reached bob through rtpengine"
        bye_both_ways(c, bob)
        assert rtpe.wait_no_calls() == []
        wait_log(server, RELAY_LINE + rtpe.spec)
        # MEDIA column: 'relay N/M pkts, X% loss' (the relay's name may stand after 'relay').
        out = calls_table(server, MEDIA_RELAY)
        m = re.search(MEDIA_RELAY, out)
        assert int(m.group(1)) + int(m.group(2)) > 0, f"packets went through but the table says:\n{out}"
    finally:
        a_rtp.close()
        b_rtp.close()


def test_always_late_offer(media_server, rtpe):
    """INVITE without SDP: the offer is in bob's 200, the answer in alice's ACK; both rewritten."""
    server = media_server(rtpe.spec)
    alice, bob = phones(server, "alice", "bob")
    c, (inv,) = ring_media(alice, [bob], None)
    assert not inv.body, "an INVITE without SDP reached bob with a body"
    tag = rand(8)
    answer(bob, inv, tag, plain_sdp(BOB_RTP))
    r = c.final()
    assert r is not None and r.status == 200
    assert_relayed(r, rtpe, BOB_RTP)
    c.ack(plain_sdp(ALICE_RTP))
    ack = bob.recv(3, is_req("ACK"))
    assert ack is not None
    assert ack.body, "the ACK reached bob without the answer"
    assert_relayed(ack, rtpe, ALICE_RTP)
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == []
    wait_log(server, RELAY_LINE + rtpe.spec)


def test_always_callee_puts_caller_on_hold(media_server, rtpe):
    """bob's re-INVITE (a=sendonly) reaches alice rewritten, her 200 (recvonly) reaches bob
    rewritten, and the direction attributes survive."""
    server = media_server(rtpe.spec)
    alice, bob = phones(server, "alice", "bob")
    inv, r, c, tag = plain_call(alice, bob, bye=False)
    assert_relayed(inv, rtpe, ALICE_RTP)
    assert_relayed(r, rtpe, BOB_RTP)
    # bob puts alice on hold.
    callee_reinvite(bob, inv, tag, 1, plain_sdp(BOB_RTP, direction="sendonly", version=2))
    re_inv = alice.recv(5, is_req("INVITE"))
    assert re_inv is not None, "the re-INVITE did not reach alice"
    sdp = assert_relayed(re_inv, rtpe, BOB_RTP)
    assert sdp.direction() == "sendonly", sdp.text
    alice.reply(re_inv, 200, "OK", headers=[f"Contact: <sip:alice@{alice.hostport}>",
                                            "Content-Type: application/sdp"],
                body=plain_sdp(ALICE_RTP, direction="recvonly", version=2))
    r = bob.final(5, cseq_method="INVITE")
    assert r is not None and r.status == 200, r
    sdp = assert_relayed(r, rtpe, ALICE_RTP)
    assert sdp.direction() == "recvonly", sdp.text
    callee_ack(bob, inv, tag, 1, uri_of(r.get("contact")))
    assert alice.recv(3, is_req("ACK")) is not None
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == []


def rtp_through(src, port, dst, n=20, ssrc=0x1234ABCD):
    """Sends n RTP packets from socket src to rtpengine's port; how many reach socket dst."""
    dst.settimeout(0.2)
    got = 0
    for i in range(n):
        src.sendto(rtp_packet(i + 1, ssrc), ("127.0.0.1", port))
        try:
            dst.recvfrom(2048)
            got += 1
        except socket.timeout:
            pass
    while True:  # late ones, so that the next count starts clean
        try:
            dst.recvfrom(2048)
        except socket.timeout:
            return got


def udp_sockets(n):
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        out.append(s)
    return out


def test_always_forked_call_two_early_dialogs(media_server, rtpe):
    """bob on two phones; each sends 183 with SDP (two early dialogs), then the FIRST one
    answers after the second spoke. Each fork got its own offer (its own rtpengine ports);
    early media from both phones reaches alice; after the 200 alice's media reaches the phone
    that answered, not the one that spoke last; the other is cancelled; after the BYE
    rtpengine holds nothing."""
    server = media_server(rtpe.spec)
    alice, bob1, bob2 = phones(server, "alice", "bob", "bob")
    a_rtp, b1_rtp, b2_rtp = socks = udp_sockets(3)
    a_port, b1_port, b2_port = (s.getsockname()[1] for s in socks)
    try:
        c, (inv1, inv2) = ring_media(alice, [bob1, bob2], plain_sdp(a_port))
        to_alice1 = assert_relayed(inv1, rtpe, a_port).audio["port"]
        to_alice2 = assert_relayed(inv2, rtpe, a_port).audio["port"]
        assert to_alice1 != to_alice2, "both forks got the same rtpengine port: one offer for both"
        wait_log(server, "one offer per fork")
        answer(bob1, inv1, "t1", plain_sdp(b1_port), 183, "Session Progress")
        e1 = alice.recv(5, is_resp("INVITE", 183))
        answer(bob2, inv2, "t2", plain_sdp(b2_port), 183, "Session Progress")
        e2 = alice.recv(5, is_resp("INVITE", 183))
        assert e1 is not None and e2 is not None, "alice did not get both 183s"
        assert "t1" in e1.get("to") and "t2" in e2.get("to")
        # Both early SDPs are rtpengine's (the first one's port may no longer show in its
        # `query`, which lists the streams of the latest early dialog).
        for e, port in ((e1, b1_port), (e2, b2_port)):
            sdp = body_ok(e)
            assert sdp.addr() == "127.0.0.1" and rtpe.owns(sdp.audio["port"]) and sdp.audio["port"] != port, sdp.text
        # Early media from each phone (to the port its INVITE named) reaches alice.
        assert rtp_through(b1_rtp, to_alice1, a_rtp, ssrc=0xB1) >= 15, "bob1's early media did not reach alice"
        assert rtp_through(b2_rtp, to_alice2, a_rtp, ssrc=0xB2) >= 15, "bob2's early media did not reach alice"
        # The first fork answers, after the second one spoke.
        answer(bob1, inv1, "t1", plain_sdp(b1_port))
        r = c.final()
        assert r is not None and r.status == 200 and "t1" in r.get("to")
        to_bob1 = assert_relayed(r, rtpe, b1_port).audio["port"]
        c.ack()
        assert bob1.recv(3, is_req("ACK")) is not None
        can = bob2.recv(3, is_req("CANCEL"))
        assert can is not None
        bob2.reply(can, 200, "OK")
        answer(bob2, inv2, "t2", b"", 487, "Request Terminated")
        assert bob2.recv(3, is_req("ACK")) is not None
        got1 = rtp_through(a_rtp, to_bob1, b1_rtp, ssrc=0xA1)
        b2_rtp.settimeout(0.2)
        try:
            stray = b2_rtp.recvfrom(2048)
        except socket.timeout:
            stray = None
        assert got1 >= 15, f"only {got1} of 20 packets alice sent reached bob1, who answered"
        assert stray is None, "alice's media went to bob2, whose fork was cancelled"
        assert rtp_through(b1_rtp, to_alice1, a_rtp, ssrc=0xB1) >= 15, "bob1's media no longer reaches alice"
        bye_both_ways(c, bob1)
        assert rtpe.wait_no_calls() == [], "rtpengine still holds the forked call after the BYE"
    finally:
        for s in socks:
            s.close()


def test_always_cancel_and_busy_leave_nothing(media_server, rtpe):
    server = media_server(rtpe.spec)
    alice, bob = phones(server, "alice", "bob")
    # Cancelled while ringing.
    c, (inv,) = ring_media(alice, [bob], plain_sdp(ALICE_RTP))
    assert_relayed(inv, rtpe, ALICE_RTP)
    tag = rand(8)
    answer(bob, inv, tag, "", 180, "Ringing")
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    assert len(rtpe.calls()) == 1
    assert c.cancel().status == 200
    can = bob.recv(3, is_req("CANCEL"))
    assert can is not None
    bob.reply(can, 200, "OK")
    answer(bob, inv, tag, b"", 487, "Request Terminated")
    r = c.final()
    assert r is not None and r.status == 487
    c.ack_non2xx(r)
    assert rtpe.wait_no_calls() == [], "rtpengine still holds the cancelled call"
    wait_log(server, "call: cancelled alice@a.test -> bob@a.test")
    # Busy.
    c, (inv,) = ring_media(alice, [bob], plain_sdp(ALICE_RTP))
    assert_relayed(inv, rtpe, ALICE_RTP)
    answer(bob, inv, rand(8), b"", 486, "Busy Here")
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)
    assert rtpe.wait_no_calls() == [], "rtpengine still holds the busy call"


def test_always_ring_timeout_leaves_nothing(server_factory, rtpe):
    server = server_factory(extra=["--rtpengine", rtpe.spec, "--media", "always",
                                   "--ring-timeout", "2"]).start()
    alice, bob = phones(server, "alice", "bob")
    c, (inv,) = ring_media(alice, [bob], plain_sdp(ALICE_RTP))
    assert_relayed(inv, rtpe, ALICE_RTP)
    tag = rand(8)
    answer(bob, inv, tag, "", 180, "Ringing")
    r = c.final(timeout=8)
    assert r is not None and r.status == 408
    c.ack_non2xx(r)
    can = bob.recv(3, is_req("CANCEL"))
    assert can is not None
    bob.reply(can, 200, "OK")
    answer(bob, inv, tag, b"", 487, "Request Terminated")
    assert rtpe.wait_no_calls() == [], "rtpengine still holds the call after the ring timeout"


# ---- 3. faults -----------------------------------------------------------------------------------

def test_fault_no_rtpengine_listening(media_server):
    """Nothing at the --rtpengine port: the call connects unrelayed and the log warns."""
    server = media_server(f"udp:127.0.0.1:{dead_port()}", extra=["--rtpengine-timeout", "500"])
    alice, bob = phones(server, "alice", "bob")
    inv, r, _, _ = plain_call(alice, bob)
    assert_direct(inv, ALICE_RTP)
    assert_direct(r, BOB_RTP)
    assert wait_warn(server, "rtpengine")
    assert RELAY_LINE not in server.read_log()
    wait_log(server, "call: ended alice@a.test -> bob@a.test")
    assert options_answered(server)


def test_fault_rtpengine_killed_mid_call(media_server, rtpe):
    server = media_server(rtpe.spec, extra=["--rtpengine-timeout", "500"])
    alice, bob = phones(server, "alice", "bob")
    inv, r, c, _ = plain_call(alice, bob, bye=False)
    assert_relayed(inv, rtpe, ALICE_RTP)
    before = len(log_lines(server, "warn", "rtpengine"))
    rtpe.kill()
    bye_both_ways(c, bob)
    wait_log(server, "call: ended alice@a.test -> bob@a.test")
    got = wait_warn(server, "rtpengine")
    assert len(got) > before, f"no new warning about the dead rtpengine:\n{server.read_log()[-3000:]}"
    assert options_answered(server)
    # And the next call goes on without it.
    inv, r, _, _ = plain_call(alice, bob)
    assert_direct(inv, ALICE_RTP)


@pytest.mark.parametrize("required,timeout", [(False, "500"), (True, "500"), (False, None)],
                         ids=["unrelayed", "required-503", "default-timeout"])
def test_fault_rtpengine_never_answers(media_server, required, timeout):
    """An ng peer that takes the offer and stays silent: after --rtpengine-timeout the INVITE goes
    on unrelayed, or with --media-required true the caller gets 503 and bob hears nothing. With
    the default timeout (2000 ms) the offer is retransmitted meanwhile."""
    peer = SilentPeer()
    try:
        extra = ["--media-required", "true" if required else "false"]
        if timeout:
            extra += ["--rtpengine-timeout", timeout]
        server = media_server(peer.spec, extra=extra)
        alice, bob = phones(server, "alice", "bob")
        if not required:
            inv, r, _, _ = plain_call(alice, bob)
            assert_direct(inv, ALICE_RTP)
            assert_direct(r, BOB_RTP)
        else:
            c = MediaCall(alice, "sip:bob@a.test", plain_sdp(ALICE_RTP))
            r = c.start() or c.final(timeout=10)
            assert r is not None and r.status == 503, r
            c.ack_non2xx(r)
            assert bob.recv(1, is_req("INVITE")) is None, "bob got the INVITE although media is required"
        offers = [x[0] for x in peer.got if isinstance(x, tuple) and isinstance(x[1], dict)
                  and x[1].get("command") == "offer"]
        assert offers, f"the silent peer got no offer: {peer.got}"
        if timeout is None:
            assert len(offers) > len(set(offers)), f"the offer was never retransmitted: {peer.got}"
        assert wait_warn(server, "rtpengine")
        assert options_answered(server)
    finally:
        peer.close()


def oversized_sdp():
    s = plain_sdp(ALICE_RTP)
    pad = "".join(f"a=x-pad{i}:{'p' * 60}\r\n" for i in range(260))
    s += pad
    assert len(s) > 16384
    return s


BAD_SDP = {
    "bad-port": plain_sdp(ALICE_RTP).replace(f"m=audio {ALICE_RTP} ", "m=audio x "),
    "no-m-line": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
    "oversized": oversized_sdp(),
}


@pytest.mark.parametrize("kind", sorted(BAD_SDP))
def test_fault_bad_sdp_refused(media_server, rtpe, kind):
    server = media_server(rtpe.spec)
    alice, bob = phones(server, "alice", "bob")
    c = MediaCall(alice, "sip:bob@a.test", BAD_SDP[kind])
    r = c.start() or c.final()
    assert r is not None, "no answer to an INVITE with bad SDP"
    assert r.status in (400, 488), f"{r.status} {r.reason}"
    why = (r.reason + " " + " ".join(r.headers.get("warning", []))).lower()
    assert "sdp" in why, f"the reason does not name the problem: {r.status} {r.reason}"
    c.ack_non2xx(r)
    assert bob.recv(1, is_req("INVITE")) is None
    assert rtpe.calls() == []
    assert options_answered(server)
    # The server still relays a good call.
    inv, _, c, _ = plain_call(alice, bob, bye=False)
    assert_relayed(inv, rtpe, ALICE_RTP)
    bye_both_ways(c, bob)
    assert rtpe.wait_no_calls() == []


def test_fault_two_rtpengines_one_dead(media_server, rtpe):
    """The dead one first and heavier: every call is still relayed, through the live one."""
    dead = f"udp:127.0.0.1:{dead_port()}"
    server = media_server(f"{dead};weight=2", rtpe.spec, extra=["--rtpengine-timeout", "500"])
    alice, bob = phones(server, "alice", "bob")
    for i in range(4):
        inv, r, c, _ = plain_call(alice, bob, bye=False)
        assert_relayed(inv, rtpe, ALICE_RTP)
        assert_relayed(r, rtpe, BOB_RTP)
        bye_both_ways(c, bob)
        assert rtpe.wait_no_calls() == []
    assert wait_for(lambda: server.read_log().count(RELAY_LINE + rtpe.spec) >= 4), server.read_log()[-3000:]
    log = server.read_log()
    assert log.count(RELAY_LINE + rtpe.spec) == 4, log[-3000:]
    assert RELAY_LINE + dead not in log


# ---- reload (SIGHUP) ----------------------------------------------------------------------------

def _reload(server, conf, text, *lines):
    """Rewrites the config file, sends SIGHUP with `parley reload` and waits for lines."""
    from conftest import parley
    conf.write_text(text)
    r = parley("reload", db=server.db)
    assert r.returncode == 0, r.stderr
    for ln in lines:
        wait_log(server, ln)


def test_reload_moves_new_calls_to_another_rtpengine(server_factory, tmp_path):
    """[media] rtpengine changed by SIGHUP: a call in progress stays on the old rtpengine
    (its delete goes there), the next call goes through the new one; media = never by
    reload leaves the next call direct."""
    a = Rtpengine(str(tmp_path), "rtpe-a").start()
    b = Rtpengine(str(tmp_path), "rtpe-b").start()
    conf = tmp_path / "media.conf"
    conf.write_text(f"[media]\nrtpengine = {a.spec}\nmedia = always\n")
    server = server_factory(extra=["--config", str(conf)]).start()
    alice, bob = phones(server, "alice", "bob")
    try:
        inv1, r1, c1, _ = plain_call(alice, bob, bye=False)
        assert_relayed(inv1, a, ALICE_RTP)
        _reload(server, conf, f"[media]\nrtpengine = {b.spec}\nmedia = always\n",
                f"rtpengine {b.spec}: added", f"rtpengine {a.spec}: removed; its 1 relayed calls keep it")
        assert "[media] rtpengine: " in server.read_log()
        inv2, r2, c2, _ = plain_call(alice, bob, bye=False)
        assert_relayed(inv2, b, ALICE_RTP)
        assert len(a.calls()) == 1 and len(b.calls()) == 1, (a.calls(), b.calls())
        bye_both_ways(c1, bob)
        assert a.wait_no_calls() == []  # the old call's delete went to its own rtpengine
        bye_both_ways(c2, bob)
        assert b.wait_no_calls() == []
        _reload(server, conf, f"[media]\nrtpengine = {b.spec}\nmedia = never\n", "[media] media: always -> never")
        inv3, _, _, _ = plain_call(alice, bob)
        assert_direct(inv3, ALICE_RTP)
    finally:
        a.stop()
        b.stop()


def test_reload_adds_a_relay_to_a_server_started_without(server_factory, tmp_path):
    """A server started with no rtpengine gets one by SIGHUP: the next call is relayed, and its
    end deletes it from rtpengine (the proxy tells the relay of every call's end)."""
    a = Rtpengine(str(tmp_path), "rtpe-a").start()
    conf = tmp_path / "media.conf"
    conf.write_text("[media]\nmedia = always\n")
    server = server_factory(extra=["--config", str(conf)]).start()
    alice, bob = phones(server, "alice", "bob")
    try:
        inv, _, _, _ = plain_call(alice, bob)
        assert_direct(inv, ALICE_RTP)
        _reload(server, conf, f"[media]\nrtpengine = {a.spec}\nmedia = always\n", f"rtpengine {a.spec}: added")
        inv, _, c, _ = plain_call(alice, bob, bye=False)
        assert_relayed(inv, a, ALICE_RTP)
        assert len(a.calls()) == 1
        bye_both_ways(c, bob)
        assert a.wait_no_calls() == []
    finally:
        a.stop()
