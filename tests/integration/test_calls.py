"""test_calls.py: calls through the stateful proxy with real UDP phones on loopback: answer and
hang up, cancel, busy, no answer, forking to two phones, rejections, MESSAGE and call records."""
import time

from conftest import add_users, calls_table, parley, phones, registered, wait_log
from sippctl import run_sipp, sipp_phone
from sipua import (SDP, Call, callee_answer, callee_hangs_up, digest_response, is_req, is_resp,
                   parse_challenge, rand, ring, ring_forked, tag_of, uri_of)


# ---- calls that are answered ----------------------------------------------------------------

def test_call_answered_caller_hangs_up(server):
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob1, bob2 = phones(server, "alice", "bob", "bob")
    c, (inv1, inv2) = ring_forked(alice, [bob1, bob2])
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
    alice, bob1, bob2 = phones(server, "alice", "bob", "bob")
    c, (inv1, inv2) = ring_forked(alice, [bob1, bob2])
    callee_answer(bob2, inv2, 503, "Service Unavailable", "t2")
    callee_answer(bob1, inv1, 486, "Busy Here", "t1")
    r = c.final()
    assert r is not None and r.status == 486


def test_forked_503_becomes_500(server):
    alice, bob = phones(server, "alice", "bob")
    c, inv = ring(alice, bob)
    callee_answer(bob, inv, 503, "Service Unavailable", rand(8))
    r = c.final()
    assert r is not None and r.status == 500


def test_decline_6xx_cancels_other_phone(server):
    alice, bob1, bob2 = phones(server, "alice", "bob", "bob")
    c, (inv1, inv2) = ring_forked(alice, [bob1, bob2])
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
    r = alice.request("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>",
                      frm=f"<sip:bob@a.test>;tag={rand(6)}",
                      headers=["Content-Type: application/sdp"], body=SDP)
    assert r is not None and r.status == 403
    assert bob.recv(0.5, is_req("INVITE")) is None


# ---- other requests -------------------------------------------------------------------------

def test_message_between_users(server):
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
    alice, bob = phones(server, "alice", "bob")
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
