"""test_federation.py: two Parley instances, a.test on 127.0.0.1 and b.test on 127.0.0.2, each
with its own database and users, hand calls to each other as peers."""
import threading
import time

import pytest

from conftest import calls_table, parley, registered, wait_log
from sippctl import run_sipp, sipp_phone
from sipua import SDP, UA, Call, callee_answer, callee_hangs_up, free_port, is_req, is_resp, rand, ring


def start_pair(server_factory, pa, pb, a_extra, b_extra):
    """Starts a.test on 127.0.0.1:pa and b.test on 127.0.0.2:pb with the flags given."""
    a = server_factory(domains=("a.test",), host="127.0.0.1", port=pa, name="a", extra=a_extra)
    b = server_factory(domains=("b.test",), host="127.0.0.2", port=pb, name="b", extra=b_extra)
    a.start()
    b.start()
    return a, b


def register_pair(a, b):
    """alice@a.test registered at a, bob@b.test at b; returns their UAs."""
    a.user_add("alice@a.test", "alicepw")
    b.user_add("bob@b.test", "bobpw")
    return registered(a, "alice", "alicepw"), registered(b, "bob", "bobpw")


@pytest.fixture
def pair(server_factory):
    pa, pb = free_port("127.0.0.1"), free_port("127.0.0.2")
    a, b = start_pair(server_factory, pa, pb, ["--peer", f"b.test=sip:127.0.0.2:{pb}"],
                      ["--peer", f"a.test=sip:127.0.0.1:{pa}"])
    alice, bob = register_pair(a, b)
    yield a, b, alice, bob
    alice.close()
    bob.close()


def test_call_across_answered_and_hung_up_by_caller(pair):
    a, b, alice, bob = pair
    c = Call(alice, "sip:bob@b.test")
    assert c.start() is None  # 407 answered
    inv = bob.recv(5, is_req("INVITE"))
    assert inv is not None, a.read_log()[-2000:] + b.read_log()[-2000:]
    # both proxies are on the path, each recorded its route
    assert len(inv.all("via")) == 3
    assert len(inv.all("record-route")) == 2
    assert inv.get("max-forwards") == "68"
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200 and len(r.all("via")) == 1
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    r = None

    def bob_side():
        bye = bob.recv(5, is_req("BYE"))
        assert bye is not None
        bob.reply(bye, 200, "OK")
    th = threading.Thread(target=bob_side)
    th.start()
    r = c.in_dialog("BYE")
    th.join()
    assert r is not None and r.status == 200
    # both sides record the call and log the hop
    calls_table(a, r"alice@a\.test\s+bob@b\.test.*answered")
    calls_table(b, r"alice@a\.test\s+bob@b\.test.*answered")
    wait_log(a, "call: ended alice@a.test -> bob@b.test")
    wait_log(b, "call: ended alice@a.test -> bob@b.test")


def test_callee_hangs_up_across(pair):
    a, b, alice, bob = pair
    c, inv = ring(alice, bob, "sip:bob@b.test")
    tag = rand(8)
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    assert c.final().status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    bye, r = callee_hangs_up(alice, bob, inv, tag)
    assert bye is not None and r is not None and r.status == 200


def test_busy_across(pair):
    a, b, alice, bob = pair
    c, inv = ring(alice, bob, "sip:bob@b.test")
    callee_answer(bob, inv, 486, "Busy Here", rand(8))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)
    calls_table(a, r"busy")
    calls_table(b, r"busy")


def test_cancel_across(pair):
    a, b, alice, bob = pair
    c, inv = ring(alice, bob, "sip:bob@b.test")
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    assert c.cancel().status == 200
    can = bob.recv(5, is_req("CANCEL"))
    assert can is not None
    bob.reply(can, 200, "OK")
    callee_answer(bob, inv, 487, "Request Terminated", tag)
    r = c.final()
    assert r is not None and r.status == 487
    c.ack_non2xx(r)
    calls_table(a, r"cancel")


def test_call_back_from_b_to_a(pair):
    a, b, alice, bob = pair
    c, inv = ring(bob, alice, "sip:alice@a.test")
    assert inv is not None
    tag = rand(8)
    callee_answer(alice, inv, 200, "OK", tag, SDP.encode())
    assert c.final().status == 200
    c.ack()
    assert alice.recv(3, is_req("ACK")) is not None
    calls_table(b, r"bob@b\.test\s+alice@a\.test.*answered")


def test_inbound_from_peer_is_not_challenged_but_relay_is_refused(pair):
    """b's users reach a's users without a challenge, but nobody at b may relay through a
    to a third domain unless b is trusted."""
    a, b, alice, bob = pair
    x = UA(a.addr, user="mallory", domain="b.test", host="127.0.0.2")
    x.send_raw(x.build("OPTIONS", "sip:someone@c.test"))
    r = x.final()
    assert r is not None and r.status == 403
    x.close()


def test_loop_between_misconfigured_peers(server_factory):
    """a sends c.test to b and b sends it back to a, each trusting the other: the loop ends
    with 482 (loop detected) or 483, not a storm."""
    pa, pb = free_port("127.0.0.1"), free_port("127.0.0.2")
    a, b = start_pair(server_factory, pa, pb, ["--peer", f"c.test=sip:127.0.0.2:{pb}", "--trust", "127.0.0.2"],
                      ["--peer", f"c.test=sip:127.0.0.1:{pa}", "--trust", "127.0.0.1"])
    a.user_add("alice@a.test", "pw")
    alice = UA(a.addr, user="alice", domain="a.test", password="pw", host="127.0.0.1")
    c = Call(alice, "sip:carol@c.test")
    assert c.start() is None
    r = c.final(10)
    assert r is not None and r.status in (482, 483), r
    c.ack_non2xx(r)
    log = a.read_log() + b.read_log()
    assert "loop" in log.lower()
    # a handful of hops, not seventy
    assert log.count("recv: from 127.0.0.2") < 20
    alice.close()


# ---- RFC 3263: where b.test is found through DNS --------------------------------------------

from dnsserver import DnsServer  # noqa: E402


@pytest.fixture
def dns_pair(server_factory, tmp_path):
    """a.test finds b.test through NAPTR -> SRV -> A records on a dnsmasq on loopback. The
    preferred SRV target (127.0.0.3) is a stand-in that the test controls; the second is b."""
    pa, pb, pdead = free_port("127.0.0.1"), free_port("127.0.0.2"), free_port("127.0.0.3")
    dns = DnsServer(
        naptr=[("b.test", 10, 10, "S", "SIP+D2U", "", "_sip._udp.b.test")],
        srv=[("_sip._udp.b.test", "sip1.b.test", pdead, 10, 10),
             ("_sip._udp.b.test", "sip2.b.test", pb, 20, 10)],
        hosts=[("sip1.b.test", "127.0.0.3"), ("sip2.b.test", "127.0.0.2")])
    dns.start()
    a, b = start_pair(server_factory, pa, pb, ["--dns", dns.server, "--t1", "100"],
                      ["--peer", f"a.test=sip:127.0.0.1:{pa}"])
    alice, bob = register_pair(a, b)
    first = UA(a.addr, host="127.0.0.3", port=pdead)  # the preferred SRV target; answers go to a
    yield a, b, alice, bob, first
    first.close()
    alice.close()
    bob.close()
    dns.stop()


def answer_call(alice, bob, c):
    inv = bob.recv(10, is_req("INVITE"))
    assert inv is not None
    callee_answer(bob, inv, 200, "OK", rand(8), SDP.encode())
    r = c.final(10)
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None


def test_dns_srv_failover_on_503(dns_pair):
    a, b, alice, bob, first = dns_pair
    c = Call(alice, "sip:bob@b.test")
    assert c.start() is None
    # the preferred SRV target gets the INVITE first and refuses it with 503
    inv = first.recv(10, is_req("INVITE"))
    assert inv is not None, a.read_log()[-3000:]
    first.reply(inv, 503, "Service Unavailable", to_tag=rand(8))
    answer_call(alice, bob, c)
    log = a.read_log()
    assert "503 from the next hop: failing over to 127.0.0.2" in log


def test_dns_srv_failover_on_timeout(dns_pair):
    a, b, alice, bob, first = dns_pair
    c = Call(alice, "sip:bob@b.test")
    assert c.start() is None
    assert first.recv(10, is_req("INVITE")) is not None  # and never answered
    answer_call(alice, bob, c)
    assert "did not answer: failing over to 127.0.0.2" in a.read_log()


def test_dns_unknown_domain_404(dns_pair):
    a, b, alice, bob, first = dns_pair
    c = Call(alice, "sip:carol@nowhere.test")
    assert c.start() is None
    r = c.final(10)
    assert r is not None and r.status == 404
    c.ack_non2xx(r)
    assert "No Route to Domain" in a.read_log()


# ---- real phones and SIPp across the two servers --------------------------------------------

def test_baresip_call_across_with_audio(pair, tmp_path):
    from baresip import Baresip, dominant_hz
    a, b, alice_ua, bob_ua = pair
    # the Python UAs' bindings would fork the call to them too: remove them first
    assert alice_ua.register(contact="*", expires=0).status == 200
    assert bob_ua.register(contact="*", expires=0).status == 200
    alice = Baresip(tmp_path, "alice", "alice", "a.test", "alicepw", a.port, server_host="127.0.0.1", tone_hz=1000).start()
    bob = Baresip(tmp_path, "bob", "bob", "b.test", "bobpw", b.port, server_host="127.0.0.2", tone_hz=400).start()
    try:
        alice.wait_registered()
        bob.wait_registered()
        alice.command("dial", "sip:bob@b.test")
        bob.wait_event("CALL_INCOMING")
        bob.command("accept")
        bob.wait_event("CALL_ESTABLISHED")
        alice.wait_event("CALL_ESTABLISHED")
        time.sleep(3)
        bob.command("hangup")  # the callee hangs up this time
        alice.wait_event("CALL_CLOSED")
        end = time.time() + 10
        while not bob.recordings("dec") and time.time() < end:
            time.sleep(0.2)
        hz, secs = dominant_hz(bob.recordings("dec")[-1])
        assert secs >= 1.0 and 900 <= hz <= 1100, (hz, secs)
    finally:
        alice.stop()
        bob.stop()
    calls_table(a, r"alice@a\.test\s+bob@b\.test.*answered")
    calls_table(b, r"alice@a\.test\s+bob@b\.test.*answered")


def test_sipp_calls_across(pair, tmp_path):
    """SIPp callers at a.test call an answering SIPp phone registered at b.test."""
    a, b, alice, bob = pair
    assert bob.register(contact="*", expires=0).status == 200
    with sipp_phone(b, "bob", "bobpw", calls=5):
        run_sipp("call_uac_fed.xml", f"127.0.0.1:{a.port}", tmp_path,
                 "SEQUENTIAL\nalice;alicepw;bob;b.test;a.test\n", calls=5)
    end = time.time() + 10
    while time.time() < end and parley("calls", db=b.db).stdout.count("answered") < 5:
        time.sleep(0.2)
    assert parley("calls", db=a.db).stdout.count("answered") == 5
    assert parley("calls", db=b.db).stdout.count("answered") == 5


def test_no_answer_across(server_factory):
    """a gives up after its ring timeout: the branch to b is cancelled, b cancels bob's
    phone, and alice gets 408."""
    pa, pb = free_port("127.0.0.1"), free_port("127.0.0.2")
    a, b = start_pair(server_factory, pa, pb, ["--peer", f"b.test=sip:127.0.0.2:{pb}", "--ring-timeout", "2"],
                      ["--peer", f"a.test=sip:127.0.0.1:{pa}"])
    alice, bob = register_pair(a, b)
    c, inv = ring(alice, bob, "sip:bob@b.test")
    tag = rand(8)
    callee_answer(bob, inv, 180, "Ringing", tag)
    assert alice.recv(3, is_resp("INVITE", 180)) is not None
    can = bob.recv(8, is_req("CANCEL"))
    assert can is not None
    bob.reply(can, 200, "OK")
    callee_answer(bob, inv, 487, "Request Terminated", tag)
    r = c.final(8)
    assert r is not None and r.status == 408
    c.ack_non2xx(r)
    calls_table(a, r"no answer")
    alice.close()
    bob.close()
