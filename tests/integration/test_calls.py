"""test_calls.py: calls through the stateful proxy with real UDP phones on loopback: answer and
hang up, cancel, busy, no answer, forking to two phones, rejections, MESSAGE and call records."""
import re
import threading
import time

from conftest import parley
from sippctl import run_sipp, sipp_phone
from sipua import digest_response, parse_challenge, rand

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\n")


def is_req(method):
    return lambda m: not m.is_response and m.method == method


def is_resp(method, status=None):
    def want(m):
        if not m.is_response or m.cseq_method != method:
            return False
        return status is None or m.status == status
    return want


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else None


def uri_of(value):
    m = re.search(r"<([^>]+)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


class Call:
    """The caller's side of one INVITE: sends it, answers the 407, keeps what the dialog needs."""

    def __init__(self, ua, target, call_id=None):
        self.ua = ua
        self.target = target
        self.call_id = call_id or rand(16) + "@test"
        self.to = f"<{target}>"
        self.headers = ["Content-Type: application/sdp"]
        self.remote_tag = None
        self.remote_target = None
        self.route = []
        self.cseq = None
        self.branch = None

    def _send(self, extra=()):
        self.ua.cseq += 1
        self.cseq = self.ua.cseq
        self.branch = "z9hG4bK" + rand(12)
        self.ua.send_raw(self.ua.build("INVITE", self.target, headers=self.headers + list(extra), body=SDP,
                                       to=self.to, call_id=self.call_id, cseq=self.cseq, branch=self.branch))

    def ack_non2xx(self, resp):
        """The ACK for a non-2xx final: same branch as the INVITE (hop by hop, §17.1.1.3)."""
        self.ua.send_raw(self.ua.build("ACK", self.target, to=resp.get("to"), call_id=self.call_id,
                                       cseq=self.cseq, branch=self.branch, contact=False))

    def start(self):
        """Sends the INVITE and answers the proxy's challenge; returns without waiting for more."""
        self._send()
        r = self.ua.recv(5, lambda m: m.is_response and m.cseq_method == "INVITE" and m.status >= 200)
        assert r is not None, "no answer to the INVITE"
        if r.status == 407:
            self.ack_non2xx(r)
            ch = parse_challenge(r.get("proxy-authenticate"))
            cred = digest_response(ch, "INVITE", self.target, self.ua.user, self.ua.password)
            self._send([f"Proxy-Authorization: {cred}"])
            return None
        return r

    def final(self, timeout=5.0):
        r = self.ua.recv(timeout, lambda m: m.is_response and m.cseq_method == "INVITE" and m.status >= 200
                         and self._mine(m))
        if r is not None and r.status < 300:
            self.remote_tag = tag_of(r.get("to"))
            self.remote_target = uri_of(r.get("contact"))
            self.route = list(reversed(r.all("record-route")))
            self.to = r.get("to")
        return r

    def _mine(self, m):
        return m.get("call-id") == self.call_id and int(m.get("cseq").split()[0]) == self.cseq

    def ack(self):
        """The ACK for a 2xx: end to end along the recorded route (§13.2.2.4)."""
        self.ua.send_raw(self.ua.build("ACK", self.remote_target, to=self.to, call_id=self.call_id,
                                       cseq=self.cseq, contact=False,
                                       headers=[f"Route: {', '.join(self.route)}"] if self.route else []))

    def in_dialog(self, method):
        """Sends an in-dialog request (BYE, ...) and returns its final response."""
        self.ua.cseq += 1
        self.ua.send_raw(self.ua.build(method, self.remote_target, to=self.to, call_id=self.call_id,
                                       cseq=self.ua.cseq, contact=False,
                                       headers=[f"Route: {', '.join(self.route)}"] if self.route else []))
        return self.ua.final(5, cseq_method=method)

    def cancel(self):
        """CANCEL for the INVITE: same Request-URI, branch, Call-ID, CSeq number (§9.1)."""
        self.ua.send_raw(self.ua.build("CANCEL", self.target, to=f"<{self.target}>", call_id=self.call_id,
                                       cseq=self.cseq, branch=self.branch, contact=False))
        return self.ua.final(5, cseq_method="CANCEL")


def callee_answer(ua, inv, status, reason, tag, body=b""):
    headers = [f"Contact: <sip:{ua.user}@{ua.hostport}>"] if status < 300 else []
    if body:
        headers.append("Content-Type: application/sdp")
    ua.reply(inv, status, reason, to_tag=tag, headers=headers, body=body)


def callee_bye(ua, inv, tag, cseq=1):
    """The callee hangs up: its route set is the Record-Route of the INVITE in order."""
    route = inv.all("record-route")
    lines = [f"BYE {uri_of(inv.get('contact'))} SIP/2.0",
             f"Via: SIP/2.0/UDP {ua.hostport};branch=z9hG4bK{rand(12)};rport",
             f"From: {inv.get('to')};tag={tag}", f"To: {inv.get('from')}",
             f"Call-ID: {inv.get('call-id')}", f"CSeq: {cseq} BYE", "Max-Forwards: 70"]
    if route:
        lines.append(f"Route: {', '.join(route)}")
    lines.append("Content-Length: 0")
    ua.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())
    return ua.final(5, cseq_method="BYE")


def callee_hangs_up(caller, callee, inv, tag, timeout=5):
    """The callee sends BYE (callee_bye) while the caller's side, in a thread, answers the
    BYE it receives with 200. Returns (BYE seen by the caller or None, response to the BYE)."""
    got = {}

    def caller_side():
        bye = caller.recv(timeout, is_req("BYE"))
        got["bye"] = bye
        if bye is not None:
            caller.reply(bye, 200, "OK")
    th = threading.Thread(target=caller_side)
    th.start()
    r = callee_bye(callee, inv, tag)
    th.join()
    return got["bye"], r


def add_users(server, *users):
    for u in users:
        server.user_add(f"{u}@a.test", "pw")


def registered(server, user):
    ua = server.ua(user, "pw")
    r = ua.register()
    assert r is not None and r.status == 200, r
    return ua


def calls_table(server, want, timeout=5.0):
    """Polls `parley calls` until a line matches the regex want (records are written behind)."""
    end = time.time() + timeout
    out = ""
    while time.time() < end:
        r = parley("calls", db=server.db)
        out = r.stdout
        if r.returncode == 0 and re.search(want, out):
            return out
        time.sleep(0.2)
    raise AssertionError(f"no call record matching {want!r} in:\n{out}")


def wait_log(server, text, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if text in server.read_log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged:\n{server.read_log()[-3000:]}")


def ring(alice, bob, target="sip:bob@a.test"):
    """alice calls bob; bob's phone receives the INVITE. Returns (call, invite at bob)."""
    c = Call(alice, target)
    assert c.start() is None
    inv = bob.recv(5, is_req("INVITE"))
    assert inv is not None, "the callee got no INVITE"
    return c, inv


# ---- calls that are answered ----------------------------------------------------------------

def test_call_answered_caller_hangs_up(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    # What the proxy did to the request (§16.6).
    vias = inv.all("via")
    assert len(vias) == 2 and f"{server.host}:{server.port}" in vias[0] and "branch=z9hG4bK" in vias[0]
    assert inv.all("record-route") == [f"<sip:{server.host}:{server.port};lr>"]
    assert inv.get("max-forwards") == "69"
    assert inv.ruri.startswith("sip:bob@127.0.0.1:")
    assert "proxy-authorization" not in inv.headers  # they were for us (§22.3)
    assert alice.recv(2, is_resp("INVITE", 100)) is not None
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    r = alice.recv(3, is_resp("INVITE", 180))
    assert r is not None and len(r.all("via")) == 1
    wait_log(server, "call: ringing alice@a.test -> bob@a.test")
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200
    assert len(r.all("via")) == 1 and r.body == SDP.encode()
    c.ack()
    ack = bob.recv(3, is_req("ACK"))
    assert ack is not None and ack.get("call-id") == c.call_id
    wait_log(server, "call: answered alice@a.test -> bob@a.test")
    calls_table(server, r"alice@a\.test\s+bob@a\.test.*answered \(200\)")
    time.sleep(1.1)
    # alice hangs up.
    alice.cseq += 1
    alice.send_raw(alice.build("BYE", c.remote_target, to=c.to, call_id=c.call_id, cseq=alice.cseq,
                               contact=False, headers=[f"Route: {', '.join(c.route)}"]))
    bye = bob.recv(3, is_req("BYE"))
    assert bye is not None
    bob.reply(bye, 200, "OK")
    bye_resp = alice.final(3, cseq_method="BYE")
    assert bye_resp is not None and bye_resp.status == 200
    wait_log(server, "call: ended alice@a.test -> bob@a.test after ")
    out = calls_table(server, r"answered \(200\)\s+0:0[1-9]")
    assert "in progress" not in out


def test_call_callee_hangs_up(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    # bob hangs up; the BYE reaches alice's Contact through the proxy.
    assert inv.all("record-route")
    bye, r = callee_hangs_up(alice, bob, inv, tag, timeout=3)
    assert bye is not None and bye.get("call-id") == c.call_id
    assert r is not None and r.status == 200
    wait_log(server, "call: ended alice@a.test -> bob@a.test")


# ---- calls that are not answered ------------------------------------------------------------

def test_cancel_while_ringing(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    r = c.cancel()
    assert r is not None and r.status == 200
    can = bob.recv(3, is_req("CANCEL"))
    assert can is not None
    assert can.all("via")[0].split("branch=")[1].split(";")[0] == inv.all("via")[0].split("branch=")[1].split(";")[0]
    bob.reply(can, 200, "OK")
    callee_answer(bob, inv, 487, "Request Terminated", tag)
    r = c.final()
    assert r is not None and r.status == 487
    c.ack_non2xx(r)
    # The proxy acknowledges the callee's 487 itself (hop by hop).
    ack = bob.recv(3, is_req("ACK"))
    assert ack is not None
    wait_log(server, "call: cancelled alice@a.test -> bob@a.test")
    calls_table(server, r"cancelled \(487\)")


def test_cancel_callee_silent(server):
    """The callee never answers the CANCEL: the caller still gets its 487."""
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    callee_answer(bob, inv, 180, "Ringing", rand(8))
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    r = c.cancel()
    assert r is not None and r.status == 200
    assert bob.recv(3, is_req("CANCEL")) is not None
    t0 = time.time()
    r = c.final(timeout=10)
    assert r is not None and r.status == 487
    assert time.time() - t0 > 2  # it waited for the callee's 487 a while
    c.ack_non2xx(r)
    wait_log(server, "call: cancelled alice@a.test -> bob@a.test")


def test_busy(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    callee_answer(bob, inv, 486, "Busy Here", rand(8))
    r = c.final()
    assert r is not None and r.status == 486 and r.reason == "Busy Here"
    assert len(r.all("via")) == 1
    ack = bob.recv(3, is_req("ACK"))
    assert ack is not None
    c.ack_non2xx(r)
    wait_log(server, "call: busy alice@a.test -> bob@a.test")
    calls_table(server, r"busy \(486\)")


def test_no_answer_ring_timeout(server_factory):
    server = server_factory(extra=["--ring-timeout", "2"]).start()
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    t0 = time.time()
    r = c.final(timeout=6)
    assert r is not None and r.status == 408
    assert 1.5 < time.time() - t0 < 5
    c.ack_non2xx(r)
    can = bob.recv(3, is_req("CANCEL"))
    assert can is not None
    bob.reply(can, 200, "OK")
    callee_answer(bob, inv, 487, "Request Terminated", tag)
    assert bob.recv(3, is_req("ACK")) is not None
    wait_log(server, "call: no answer alice@a.test -> bob@a.test")
    calls_table(server, r"no answer \(408\)")


def test_two_phones_one_answers(server):
    add_users(server, "alice", "bob")
    alice = registered(server, "alice")
    bob1, bob2 = registered(server, "bob"), registered(server, "bob")
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    inv1 = bob1.recv(5, is_req("INVITE"))
    inv2 = bob2.recv(5, is_req("INVITE"))
    assert inv1 is not None and inv2 is not None
    wait_log(server, "call: INVITE alice@a.test -> bob@a.test (2 branches)")
    b1 = inv1.all("via")[0]
    b2 = inv2.all("via")[0]
    assert b1 != b2  # one branch each
    callee_answer(bob1, inv1, 180, "Ringing", "t1")
    callee_answer(bob2, inv2, 180, "Ringing", "t2")
    callee_answer(bob2, inv2, 200, "OK", "t2", SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200 and tag_of(r.get("to")) == "t2"
    c.ack()
    assert bob2.recv(3, is_req("ACK")) is not None
    can = bob1.recv(3, is_req("CANCEL"))
    assert can is not None
    assert "Call completed elsewhere" in (can.get("reason") or "")
    bob1.reply(can, 200, "OK")
    callee_answer(bob1, inv1, 487, "Request Terminated", "t1")
    assert bob1.recv(3, is_req("ACK")) is not None
    # No second final reaches the caller.
    assert alice.recv(1, lambda m: m.is_response and m.cseq_method == "INVITE" and m.status >= 300) is None


def test_forked_failures_pick_best(server):
    """Two phones: 486 from one and 503 from the other: the caller gets the 486 (§16.7)."""
    add_users(server, "alice", "bob")
    alice = registered(server, "alice")
    bob1, bob2 = registered(server, "bob"), registered(server, "bob")
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    inv1 = bob1.recv(5, is_req("INVITE"))
    inv2 = bob2.recv(5, is_req("INVITE"))
    callee_answer(bob2, inv2, 503, "Service Unavailable", "t2")
    callee_answer(bob1, inv1, 486, "Busy Here", "t1")
    r = c.final()
    assert r is not None and r.status == 486


def test_forked_503_becomes_500(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    callee_answer(bob, inv, 503, "Service Unavailable", rand(8))
    r = c.final()
    assert r is not None and r.status == 500


def test_decline_6xx_cancels_other_phone(server):
    add_users(server, "alice", "bob")
    alice = registered(server, "alice")
    bob1, bob2 = registered(server, "bob"), registered(server, "bob")
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    inv1 = bob1.recv(5, is_req("INVITE"))
    inv2 = bob2.recv(5, is_req("INVITE"))
    callee_answer(bob1, inv1, 180, "Ringing", "t1")
    callee_answer(bob2, inv2, 603, "Decline", "t2")
    r = c.final()
    assert r is not None and r.status == 603
    assert bob1.recv(3, is_req("CANCEL")) is not None
    wait_log(server, "call: declined alice@a.test -> bob@a.test")


# ---- rejections -----------------------------------------------------------------------------

def test_unknown_user_404(server):
    add_users(server, "alice")
    alice = registered(server, "alice")
    c = Call(alice, "sip:nobody@a.test")
    r = c.start() or c.final()
    assert r is not None and r.status == 404
    calls_table(server, r"alice@a\.test\s+nobody@a\.test.*404")


def test_known_user_without_phone_480(server):
    add_users(server, "alice", "bob")
    alice = registered(server, "alice")
    c = Call(alice, "sip:bob@a.test")
    r = c.start() or c.final()
    assert r is not None and r.status == 480
    calls_table(server, r"alice@a\.test\s+bob@a\.test.*480")


def test_max_forwards_zero_483(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    alice.send_raw(alice.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>", max_forwards=0,
                               headers=["Content-Type: application/sdp"], body=SDP))
    r = alice.final(3, cseq_method="INVITE")
    assert r is not None and r.status == 483
    assert bob.recv(0.5, is_req("INVITE")) is None


def test_open_relay_refused(server):
    outsider = server.ua("mallory", domain="evil.test")
    r = outsider.request("INVITE", "sip:victim@other.test", to="<sip:victim@other.test>",
                         headers=["Content-Type: application/sdp"], body=SDP)
    assert r is not None and r.status == 403


def test_spoofed_from_refused(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    r = alice.request("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>",
                      frm=f"<sip:bob@a.test>;tag={rand(6)}",
                      headers=["Content-Type: application/sdp"], body=SDP)
    assert r is not None and r.status == 403
    assert bob.recv(0.5, is_req("INVITE")) is None


# ---- other requests -------------------------------------------------------------------------

def test_message_between_users(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    alice.send_raw(alice.build("MESSAGE", "sip:bob@a.test", to="<sip:bob@a.test>",
                               headers=["Content-Type: text/plain"], body="hello bob", contact=False))
    r = alice.final(3, cseq_method="MESSAGE")
    assert r is not None and r.status == 407
    ch = parse_challenge(r.get("proxy-authenticate"))
    cred = digest_response(ch, "MESSAGE", "sip:bob@a.test", "alice", "pw")
    alice.send_raw(alice.build("MESSAGE", "sip:bob@a.test", to="<sip:bob@a.test>", contact=False,
                               headers=["Content-Type: text/plain", f"Proxy-Authorization: {cred}"],
                               body="hello bob"))
    msg = bob.recv(3, is_req("MESSAGE"))
    assert msg is not None and msg.body == b"hello bob"
    assert alice.recv(0.3, is_resp("MESSAGE", 100)) is None  # no 100 for non-INVITE
    bob.reply(msg, 200, "OK", to_tag=rand(6))
    r = alice.final(3, cseq_method="MESSAGE")
    assert r is not None and r.status == 200 and len(r.all("via")) == 1


def test_calls_listing(server):
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    # One busy and one cancelled call.
    c, inv = ring(alice, bob)
    callee_answer(bob, inv, 486, "Busy Here", rand(8))
    r = c.final()
    assert r.status == 486
    c.ack_non2xx(r)
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    assert c.cancel().status == 200
    can = bob.recv(3, is_req("CANCEL"))
    bob.reply(can, 200, "OK")
    callee_answer(bob, inv, 487, "Request Terminated", tag)
    r = c.final()
    assert r.status == 487
    c.ack_non2xx(r)
    out = calls_table(server, r"cancelled \(487\)")
    out = calls_table(server, r"busy \(486\)")
    assert out.count("alice@a.test") == 2


# ---- late 2xx and real peers ----------------------------------------------------------------

def test_2xx_retransmission_after_transactions_end(server_factory):
    """With T1 = 50 ms the transactions are gone after 3.2 s; a 2xx the callee retransmits
    later still reaches the caller (stateless relay by the top Via, §16.7 step 3)."""
    server = server_factory(extra=["--t1", "50"]).start()
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200
    time.sleep(4.5)
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = alice.recv(3, lambda m: m.is_response and m.status == 200 and m.get("call-id") == c.call_id)
    assert r is not None and len(r.all("via")) == 1
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None


def test_sipp_calls(server, tmp_path):
    """SIPp callers and an answering SIPp phone: ten calls with auth, ringing, answer, BYE."""
    add_users(server, "alice", "bob")
    with sipp_phone(server, "bob", "pw", calls=10):
        stats = run_sipp("call_uac.xml", f"127.0.0.1:{server.port}", tmp_path,
                         "SEQUENTIAL\nalice;pw;bob;a.test\n", calls=10)
        assert int(stats["SuccessfulCall(C)"]) == 10
    out = calls_table(server, r"answered \(200\)")
    wait_log(server, "call: ended alice@a.test -> bob@a.test")
    end = time.time() + 5
    while out.count("answered (200)") < 10 and time.time() < end:
        time.sleep(0.2)
        out = parley("calls", db=server.db).stdout
    assert out.count("answered (200)") == 10, out


def test_strict_router_compatibility(server):
    """§16.4: a request whose Request-URI is our Record-Route URI (as a strict router upstream
    sends it) goes to the last Route, which becomes the Request-URI again."""
    add_users(server, "alice", "bob")
    alice, bob = registered(server, "alice"), registered(server, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    assert c.final().status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    rr = uri_of(c.route[0])
    alice.cseq += 1
    alice.send_raw(alice.build("BYE", rr, to=c.to, call_id=c.call_id, cseq=alice.cseq, contact=False,
                               headers=[f"Route: <{c.remote_target}>"]))
    bye = bob.recv(3, is_req("BYE"))
    assert bye is not None, server.read_log()[-2000:]
    assert bye.ruri == c.remote_target
    assert "route" not in bye.headers
    bob.reply(bye, 200, "OK")
    r = alice.final(3, cseq_method="BYE")
    assert r is not None and r.status == 200
