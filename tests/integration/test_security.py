"""test_security.py: each attack of the security issue tried against the real server, and
shown refused and logged: relays, digest replays, password guessing, user enumeration,
reflection, caller-ID spoofing, floods, and registrations that would not fit."""
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import parley, registered, wait_for
from sipua import UA, digest_response, is_req, parse_challenge, rand

HERE = os.path.dirname(__file__)


def victim(host="127.0.0.9"):
    """A socket standing for a host an attacker wants to reach through us."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(0.1)
    return s


def not_keepalive(m):
    """A request other than the OPTIONS keepalive Parley sends to phones behind NAT (rport)."""
    return not m.is_response and m.method != "OPTIONS"


def got_anything(sock, wait=1.5):
    end = time.time() + wait
    while time.time() < end:
        try:
            sock.recvfrom(65535)
            return True
        except socket.timeout:
            pass
    return False


@pytest.fixture
def ab(server):
    server.user_add("alice@a.test", "alicepw")
    server.user_add("bob@a.test", "bobpw")
    return server


# ---- 1. no relay ---------------------------------------------------------------------------

@pytest.mark.parametrize("route_host", ["addr", "domain"])
def test_forged_in_dialog_request_is_not_relayed(ab, route_host):
    """A made-up To tag and a Route through us to a foreign host or raw IP: 481, nothing sent."""
    v = victim()
    vport = v.getsockname()[1]
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    route = f"<sip:{ab.host}:{ab.port};lr>" if route_host == "addr" else "<sip:a.test;lr>"
    for ruri in (f"sip:premium@127.0.0.9:{vport}", f"sip:900123@evil.test"):
        atk.send_raw(atk.build("INVITE", ruri, to_tag="forged1", headers=[f"Route: {route}"],
                               to=f"<{ruri}>"))
        r = atk.final()
        assert r is not None and r.status == 481, r
    assert not got_anything(v)
    assert "no dialog set up through this server (relay refused)" in ab.read_log()


def test_preloaded_route_from_stranger_is_refused(ab):
    """An initial INVITE to anyone@our domain with Route: us, VICTIM from a foreign From: 403."""
    v = victim()
    vport = v.getsockname()[1]
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    atk.send_raw(atk.build("INVITE", "sip:nobody@a.test", to="<sip:nobody@a.test>",
                           headers=[f"Route: <sip:{ab.host}:{ab.port};lr>, <sip:127.0.0.9:{vport};lr>"]))
    r = atk.final()
    assert r.status == 403 and "Relaying Denied" in r.reason
    assert not got_anything(v)
    assert "preloaded Route beyond this server" in ab.read_log()


def test_preloaded_route_cannot_forge_a_local_caller(ab):
    """The same bypass with From: alice@a.test and no credentials is challenged; bob's phone
    hears nothing."""
    bob = registered(ab, "bob", "bobpw")
    atk = UA(ab.addr, user="alice", domain="a.test")
    atk.send_raw(atk.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>",
                           headers=[f"Route: <sip:{ab.host}:{ab.port};lr>, <sip:{bob.hostport};lr>"]))
    r = atk.final()
    assert r.status == 407
    assert bob.recv(timeout=1.0, want=not_keepalive) is None


def test_in_dialog_request_to_a_third_party_is_refused(ab):
    """A real dialog (anonymous caller to bob) cannot be used to send a request elsewhere."""
    bob = registered(ab, "bob", "bobpw")
    caller = UA(ab.addr, user="carol", domain="c.test")
    caller.send_raw(caller.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>"))
    inv = bob.recv(want=is_req("INVITE"))
    assert inv is not None
    bob.reply(inv, 200, "OK", to_tag="bobtag", headers=[f"Contact: <sip:bob@{bob.hostport}>"])
    ok = caller.final()
    assert ok.status == 200
    v = victim()
    vport = v.getsockname()[1]
    # BYE along the dialog's route but to a host that is not its other side.
    caller.send_raw(caller.build("BYE", f"sip:x@127.0.0.9:{vport}", to="<sip:bob@a.test>", to_tag="bobtag",
                                 headers=[f"Route: <sip:{ab.host}:{ab.port};lr>"]))
    r = caller.final()
    assert r.status == 403
    assert not got_anything(v)
    assert "is not the other side of its dialog" in ab.read_log()
    # The right target still works.
    caller.send_raw(caller.build("BYE", f"sip:bob@{bob.hostport}", to="<sip:bob@a.test>", to_tag="bobtag",
                                 headers=[f"Route: <sip:{ab.host}:{ab.port};lr>"]))
    bye = bob.recv(want=is_req("BYE"))
    assert bye is not None
    bob.reply(bye, 200, "OK")
    assert caller.final().status == 200


# ---- 2. digest replay ------------------------------------------------------------------------

def challenge_of(ua, method, ruri, **kw):
    ua.send_raw(ua.build(method, ruri, **kw))
    r = ua.final(cseq_method=method)
    assert r.status in (401, 407), r
    hdr = "www-authenticate" if r.status == 401 else "proxy-authenticate"
    return r.status, parse_challenge(r.headers[hdr][0])


def test_response_without_qop_is_refused(ab):
    alice = ab.ua("alice", "alicepw")
    _, ch = challenge_of(alice, "REGISTER", "sip:a.test", headers=["Expires: 60"])
    ch.pop("qop")
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "alicepw")
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 60", f"Authorization: {cred}"]))
    assert alice.final().status == 401
    assert "unusable credentials" in ab.read_log()


def test_replayed_register_is_refused(ab):
    """The same Authorization replayed with an attacker's Contact adds nothing."""
    alice = ab.ua("alice", "alicepw")
    _, ch = challenge_of(alice, "REGISTER", "sip:a.test", headers=["Expires: 60"])
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "alicepw")
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 60", f"Authorization: {cred}"]))
    assert alice.final().status == 200
    atk = UA(ab.addr, user="alice", domain="a.test")
    atk.send_raw(atk.build("REGISTER", "sip:a.test", contact="<sip:evil@127.0.0.66:5060>",
                           headers=["Expires: 60", f"Authorization: {cred}"]))
    assert atk.final().status == 401
    assert "127.0.0.66" not in parley("reg", "list", db=ab.db).stdout
    assert "replayed nonce count" in ab.read_log()


def test_digest_uri_must_be_the_request_uri(ab):
    alice = ab.ua("alice", "alicepw")
    _, ch = challenge_of(alice, "INVITE", "sip:bob@a.test", to="<sip:bob@a.test>")
    cred = digest_response(ch, "INVITE", "sip:bob@a.test", "alice", "alicepw")
    alice.send_raw(alice.build("INVITE", "sip:900555@b.test", to="<sip:900555@b.test>",
                               headers=[f"Proxy-Authorization: {cred}"]))
    assert alice.final(cseq_method="INVITE").status == 407
    assert "is not the Request-URI" in ab.read_log()


# ---- 3. brute force ----------------------------------------------------------------------------

def guess(ab, ua, password):
    _, ch = challenge_of(ua, "REGISTER", "sip:a.test", headers=["Expires: 60"])
    cred = digest_response(ch, "REGISTER", "sip:a.test", ua.user, password)
    ua.send_raw(ua.build("REGISTER", "sip:a.test", headers=["Expires: 60", f"Authorization: {cred}"]))
    return ua.final(timeout=3)


def test_guessing_gets_banned(server_factory):
    s = server_factory(extra=["--ban-threshold", "4", "--ban-window", "60", "--ban-time", "600",
                              "--slow-after", "2"]).start()
    s.user_add("alice@a.test", "alicepw")
    atk = UA(s.addr, user="alice", domain="a.test", host="127.0.0.5")
    answers = [guess(s, atk, f"guess{i}") for i in range(3)]
    assert [r.status for r in answers] == [403, 403, 403]  # the third one was held back, not lost
    # The fourth failure bans the source: no answer from then on, not even a challenge.
    atk.send_raw(atk.build("REGISTER", "sip:a.test", headers=["Expires: 60"]))
    r = atk.final(timeout=3)
    if r is not None and r.status == 401:
        ch = parse_challenge(r.headers["www-authenticate"][0])
        cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "guess3")
        atk.send_raw(atk.build("REGISTER", "sip:a.test", headers=["Expires: 60", f"Authorization: {cred}"]))
        assert atk.final(timeout=3) is None
    atk.send_raw(atk.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False))
    assert atk.final(timeout=2) is None
    log = s.read_log()
    assert re.search(r"warn\s+ban: banned 127\.0\.0\.5 for 600 s", log), log[-3000:]
    assert "failed authentication for alice@a.test from 127.0.0.5" in log
    # Everyone else is still served, and alice with her password too.
    alice = s.ua("alice", "alicepw")
    assert alice.register().status == 200
    # The ban is listed and can be lifted while the server runs.
    assert wait_for(lambda: "127.0.0.5" in parley("ban", "list", db=s.db).stdout, 10)
    assert parley("ban", "del", "127.0.0.5", db=s.db).returncode == 0

    def answered():
        atk.send_raw(atk.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False))
        return atk.final(timeout=0.5) is not None
    assert wait_for(answered, 15)


# ---- 4. enumeration -----------------------------------------------------------------------------

def shape(r):
    """A response with what differs per request (tags, Call-ID, branch, CSeq) left out."""
    names = sorted(k for k in r.headers)
    return (r.status, r.reason, names)


def test_no_user_enumeration(ab):
    """Without credentials, an existing user with no phone and a user that does not exist get
    the same answer, with the same headers, for OPTIONS, INVITE and MESSAGE."""
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    for method in ("OPTIONS", "INVITE", "MESSAGE"):
        got = []
        for user in ("alice", "nosuchuser"):
            atk.send_raw(atk.build(method, f"sip:{user}@a.test", to=f"<sip:{user}@a.test>"))
            got.append(atk.final(cseq_method=method))
        assert got[0] is not None and shape(got[0]) == shape(got[1]), (method, got)
        assert got[0].status == 404
    # With credentials: an unknown user and a wrong password are one and the same 403.
    r1 = guess(ab, UA(ab.addr, user="alice", domain="a.test"), "wrong")
    r2 = guess(ab, UA(ab.addr, user="nosuchuser", domain="a.test"), "wrong")
    assert shape(r1) == shape(r2) and r1.status == 403


# ---- 5. bounded cost ----------------------------------------------------------------------------

def test_challenge_is_stateless(ab):
    """One unauthenticated INVITE gets exactly one 407 (no retransmissions to a spoofed source)
    and leaves no call record."""
    ua = UA(ab.addr, user="alice", domain="a.test")
    ua.send_raw(ua.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>"))
    assert len(ua.collect(4.0)) == 1
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    for i in range(5):
        atk.send_raw(atk.build("INVITE", f"sip:nobody{i}@a.test", to=f"<sip:nobody{i}@a.test>",
                               call_id=rand(12)))
        assert atk.final().status == 404
    assert "mallory" not in parley("calls", db=ab.db).stdout


def test_rejections_are_aggregated_in_the_log(ab):
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    for i in range(60):
        atk.send_raw(atk.build("INVITE", f"sip:x{i}@a.test", to=f"<sip:x{i}@a.test>", call_id=rand(12)))
        atk.final(timeout=1)
    log = ab.read_log()
    assert len(re.findall(r"info\s+reject: INVITE sip:x\d+@a.test", log)) <= 10
    # the summary comes once the 10 s interval is over
    assert wait_for(lambda: re.search(r"reject: \d+ more like this in the last 10 s", ab.read_log()), 15)


def test_rate_limit_per_source(server_factory):
    s = server_factory(extra=["--rate-limit", "20"]).start()
    ua = UA(s.addr, host="127.0.0.6")
    for i in range(200):
        ua.send_raw(ua.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False, call_id=rand(12)))
    answered = len(ua.collect(1.5))
    assert 0 < answered < 120
    assert wait_for(lambda: "over the rate limit: 127.0.0.6" in s.read_log(), 5)
    other = UA(s.addr, host="127.0.0.7")
    other.send_raw(other.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False))
    assert other.final().status == 200


def test_transaction_cap_sheds_new_calls_first(server_factory):
    """Over the high-water mark new INVITEs get 503 with Retry-After, while a registered phone
    still refreshes its registration."""
    s = server_factory(extra=["--max-transactions", "100", "--rate-limit", "0"]).start()
    s.user_add("bob@a.test", "bobpw")
    # Requests to a binding go to the address it registered from: the phone registers from a
    # socket that reads nothing afterwards, so the INVITEs and their resends pile up there and
    # cannot fill the receive buffer of bob's socket, which refreshes the binding below.
    phone = s.ua("bob", "bobpw")
    contact = f"<sip:bob@{phone.hostport}>"
    assert phone.register(contact=contact).status == 200
    bob = s.ua("bob", "bobpw")
    atk = UA(s.addr, user="mallory", domain="evil.test")
    for i in range(150):
        atk.send_raw(atk.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>", call_id=rand(12)))
    answers = atk.collect(1.5)
    codes = [r.status for r in answers]
    retry = any(r.get("retry-after") is not None for r in answers if r.status == 503)
    assert 503 in codes and retry, codes
    assert bob.register(contact=contact).status == 200
    assert "503 Service Unavailable (new request over the high-water mark)" in s.read_log()


# ---- 6. reflection ----------------------------------------------------------------------------

def test_no_answer_without_a_usable_via(ab):
    ua = UA(ab.addr)
    ua.send_raw(b"A")
    ua.send_raw(b"INVITE sip:bob@a.test SIP/2.0\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:bob@a.test>\r\n"
                b"Call-ID: novia\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert len(ua.collect(1.5)) == 0
    # and the server is still there
    ua.send_raw(ua.build("OPTIONS", f"sip:{ab.host}:{ab.port}", contact=False))
    assert ua.final().status == 200


# ---- 7. caller ID ---------------------------------------------------------------------------------

def test_asserted_identity_from_strangers_is_removed(ab):
    bob = registered(ab, "bob", "bobpw")
    atk = UA(ab.addr, user="mallory", domain="evil.test")
    atk.send_raw(atk.build("MESSAGE", "sip:bob@a.test", to="<sip:bob@a.test>", body="hi",
                           headers=["P-Asserted-Identity: <sip:ceo@a.test>", "Remote-Party-ID: <sip:ceo@a.test>",
                                    "P-Preferred-Identity: <sip:ceo@a.test>", "Content-Type: text/plain"]))
    m = bob.recv(want=is_req("MESSAGE"))
    assert m is not None
    for h in ("p-asserted-identity", "remote-party-id", "p-preferred-identity"):
        assert h not in m.headers, m
    bob.reply(m, 200, "OK")


def test_authenticated_identity_is_asserted(ab):
    bob = registered(ab, "bob", "bobpw")
    alice = ab.ua("alice", "alicepw")
    alice.send_raw(alice.build("MESSAGE", "sip:bob@a.test", to="<sip:bob@a.test>", body="x",
                               headers=["Content-Type: text/plain"]))
    r = alice.final()
    assert r.status == 407
    ch = parse_challenge(r.headers["proxy-authenticate"][0])
    cred = digest_response(ch, "MESSAGE", "sip:bob@a.test", "alice", "alicepw")
    alice.send_raw(alice.build("MESSAGE", "sip:bob@a.test", to="<sip:bob@a.test>", body="x",
                               headers=["Content-Type: text/plain", f"Proxy-Authorization: {cred}",
                                        "P-Asserted-Identity: <sip:ceo@a.test>"]))
    m = bob.recv(want=is_req("MESSAGE"))
    assert m is not None and m.headers["p-asserted-identity"] == ["<sip:alice@a.test>"], m
    bob.reply(m, 200, "OK")


@pytest.mark.parametrize("host", ["a.test.", "A.TEST", "addr"])
def test_every_form_of_our_domain_is_challenged(ab, host):
    bob = registered(ab, "bob", "bobpw")
    h = ab.host if host == "addr" else host
    atk = UA(ab.addr, user="alice", domain=h)
    atk.send_raw(atk.build("INVITE", "sip:bob@a.test", to="<sip:bob@a.test>"))
    assert atk.final().status == 407
    assert bob.recv(timeout=1.0, want=not_keepalive) is None


# ---- 8. correctness under abuse -------------------------------------------------------------------

def test_register_that_cannot_be_listed_changes_nothing(server_factory):
    s = server_factory(extra=["--max-contacts", "40"]).start()
    s.user_add("alice@a.test", "alicepw")
    alice = s.ua("alice", "alicepw")
    big = [f"<sip:alice{i}-{'x' * 5000}@127.0.0.1:5060>" for i in range(10)]
    r = alice.register(contact=", ".join(big))
    assert r.status == 400 and "Contact Too Long" in r.reason
    many = [f"<sip:alice{i}-{'y' * 900}@127.0.0.1:5060>" for i in range(30)]
    r = alice.register(contact=", ".join(many))
    assert r.status == 403 and "Too Many Bindings to List" in r.reason
    assert "alice" not in parley("reg", "list", db=s.db).stdout
    r = alice.register()
    assert r.status == 200


# ---- a bounded flood, inside a private network namespace -------------------------------------------

def test_flood_keeps_registrations_going(tmp_path):
    """Inside `unshare -n`: a fixed number of junk datagrams and INVITEs to unknown users from
    many sources while a phone registers again and again; every registration succeeds and the
    server's memory stays under its cap."""
    out = tmp_path / "flood.json"
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.join(HERE, "flood_run.py"),
                        os.environ.get("PARLEY_BIN", ""), str(tmp_path / "f.db"), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    import json
    res = json.loads(out.read_text())
    assert res["sent"] >= 20000
    assert res["registered"] == res["attempts"], res
    assert res["peak_rss_mb"] < res["cap_mb"], res
    assert res["still_serving"], res
