"""test_register.py: the registrar (RFC 3261 §10.3) with digest authentication, driven over
UDP by the test UA and by SIPp, against the real binary."""
import re
import time

import pytest

from conftest import parley, wait_for
from sippctl import run_sipp
from sipua import UA, digest_response, parse_challenge


def reg_list(server):
    r = parley("reg", "list", db=server.db)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def alice(server):
    server.user_add("alice@a.test", "secret")
    ua = server.ua("alice", "secret")
    yield ua
    ua.close()


def test_register_md5(server, alice):
    r = alice.register(expires=600)
    assert r.status == 200
    contacts = r.all("contact")
    assert len(contacts) == 1 and alice.hostport in contacts[0]
    exp = int(re.search(r"expires=(\d+)", contacts[0]).group(1))
    assert 590 <= exp <= 600
    assert "registered alice@a.test" in server.read_log()


def test_challenge_is_md5_by_default(server, alice):
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 60"]))
    r = alice.final()
    assert r.status == 401
    chs = [parse_challenge(v) for v in r.headers["www-authenticate"]]
    assert [c.get("algorithm") for c in chs] == ["MD5"]
    assert chs[0]["realm"] == "a.test" and chs[0]["qop"] == "auth"


def test_register_sha256(server_factory):
    s = server_factory(extra=["--auth-algorithms", "sha-256,md5"]).start()
    s.user_add("alice@a.test", "secret")
    ua = s.ua("alice", "secret")
    ua.send_raw(ua.build("REGISTER", "sip:a.test", headers=["Expires: 60"]))
    r = ua.final()
    chs = [parse_challenge(v) for v in r.headers["www-authenticate"]]
    assert [c.get("algorithm") for c in chs] == ["SHA-256", "MD5"]
    # the client answers the first (most preferred) challenge: SHA-256
    r = ua.register(expires=60)
    assert r.status == 200
    ua.close()


def test_wrong_password_and_unknown_user_look_the_same(server, alice):
    bad = server.ua("alice", "wrong")
    r1 = bad.register()
    ghost = server.ua("ghost", "whatever")
    r2 = ghost.register()
    assert r1.status == r2.status == 403
    assert r1.reason == r2.reason
    assert sorted(r1.headers) == sorted(r2.headers)
    log = server.read_log()
    assert "alice@a.test" in log and "bad password" in log
    assert "ghost@a.test" in log and "unknown user" in log
    bad.close()
    ghost.close()


def first_challenge(ua, **kw):
    ua.send_raw(ua.build("REGISTER", "sip:a.test", headers=["Expires: 600"], **kw))
    r = ua.final()
    assert r.status == 401
    return parse_challenge(r.headers["www-authenticate"][0])


def test_stale_nonce(server_factory):
    s = server_factory(extra=["--nonce-lifetime", "1"]).start()
    s.user_add("alice@a.test", "secret")
    ua = s.ua("alice", "secret")
    ch = first_challenge(ua)
    time.sleep(2.2)  # let the nonce expire (not a timing assertion: the outcome is fixed)
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "secret")
    ua.send_raw(ua.build("REGISTER", "sip:a.test", headers=["Expires: 600", f"Authorization: {cred}"]))
    r = ua.final()
    assert r.status == 401
    assert "stale=true" in r.get("www-authenticate").replace('"', "").lower()
    assert "stale nonce" in s.read_log()
    ua.close()


def test_replayed_nonce_count(server, alice):
    ch = first_challenge(alice)
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "secret", nc=1, cnonce="abc")
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 600", f"Authorization: {cred}"]))
    assert alice.final().status == 200
    # the very same credentials again, in a new transaction: refused
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 600", f"Authorization: {cred}"]))
    r = alice.final()
    assert r.status == 401
    assert "replayed nonce count" in server.read_log()
    # a higher count with the same nonce is fine
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "secret", nc=2, cnonce="abc")
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Expires: 600", f"Authorization: {cred}"]))
    assert alice.final().status == 200


def test_non_digest_authorization_gets_digest_challenge(server, alice):
    alice.send_raw(alice.build("REGISTER", "sip:a.test", headers=["Authorization: NoOneKnowsThisScheme opaque-data=here"]))
    r = alice.final()
    assert r.status == 401 and r.get("www-authenticate").startswith("Digest ")


def test_foreign_to_is_forbidden(server, alice):
    server.user_add("bob@a.test", "bobpw")
    r = alice.register(to="<sip:bob@a.test>")
    assert r.status == 403
    assert "authenticated as alice@a.test" in server.read_log()


def test_wrong_domain(server, alice):
    ua = UA(server.addr, user="alice", domain="elsewhere.test", password="secret")
    r = ua.register()
    assert r.status == 403
    assert "wrong domain" in server.read_log()
    ua.close()


def test_several_contacts_query_and_unregister(server, alice):
    c1 = f"<sip:alice@{alice.hostport};line=1>"
    c2 = "<sip:alice@127.0.0.1:6002>;q=0.5"
    r = alice.register(contact=f"{c1}, {c2}", expires=300)
    assert r.status == 200
    got = r.all("contact")
    assert len(got) == 2
    assert any(";line=1>" in c for c in got)
    assert any("6002>" in c and "q=0.5" in c for c in got)
    # a third one in a separate header, with its own expires parameter
    r = alice.register(contact="<sip:alice@127.0.0.1:6003>;expires=120", expires=None)
    assert r.status == 200 and len(r.all("contact")) == 3
    e3 = [c for c in r.all("contact") if "6003" in c][0]
    assert 110 <= int(re.search(r"expires=(\d+)", e3).group(1)) <= 120
    # query: no Contact lists the bindings and changes nothing
    r = alice.register(contact=None, expires=None)
    assert r.status == 200 and len(r.all("contact")) == 3
    # unregister one
    r = alice.register(contact="<sip:alice@127.0.0.1:6002>", expires=0)
    assert r.status == 200 and len(r.all("contact")) == 2
    # unregister all
    r = alice.register(contact="*", expires=0)
    assert r.status == 200 and r.all("contact") == []
    assert "all 2 bindings removed" in server.read_log()


def test_wildcard_needs_expires_zero(server, alice):
    r = alice.register(contact="*", expires=60)
    assert r.status == 400


def test_unsupported_require_lists_the_options(server, alice):
    r = alice.register(headers=["Require: path, nothingSupportsThis"])
    assert r.status == 420
    assert r.get("unsupported") == "nothingSupportsThis"


def test_interval_too_brief(server, alice):
    r = alice.register(expires=5)
    assert r.status == 423
    assert r.get("min-expires") == "60"


def test_out_of_order_cseq(server, alice):
    assert alice.register(expires=600).status == 200
    stored = alice.cseq
    # the same Call-ID with a lower CSeq than the binding's must fail (§10.3 step 7)
    ch = first_challenge(alice)
    cred = digest_response(ch, "REGISTER", "sip:a.test", "alice", "secret")
    alice.send_raw(alice.build("REGISTER", "sip:a.test", cseq=stored - 1,
                               headers=["Expires: 600", f"Authorization: {cred}"]))
    r = alice.final()
    assert r.status == 500


def test_contact_limit(server_factory):
    s = server_factory(extra=["--max-contacts", "2"]).start()
    s.user_add("alice@a.test", "secret")
    ua = s.ua("alice", "secret")
    assert ua.register(contact="<sip:a@127.0.0.1:7001>, <sip:a@127.0.0.1:7002>").status == 200
    r = ua.register(contact="<sip:a@127.0.0.1:7003>")
    assert r.status == 403
    assert "more than 2 contacts" in s.read_log()
    ua.close()


def test_contact_params_kept(server, alice):
    """RFC 4475 cparam01/cparam02/regescrt: contact params stay contact params, URI params
    and escaped headers stay in the URI."""
    r = alice.register(contact="sip:+19725552222@127.0.0.1:7010;unknownparam", expires=600)
    assert r.status == 200
    c = [x for x in r.all("contact") if "7010" in x][0]
    assert c.startswith("<sip:+19725552222@127.0.0.1:7010>") and ";unknownparam" in c
    r = alice.register(contact="<sip:+19725552222@127.0.0.1:7011;unknownparam>", expires=600)
    c = [x for x in r.all("contact") if "7011" in x][0]
    assert c.startswith("<sip:+19725552222@127.0.0.1:7011;unknownparam>")
    r = alice.register(contact="<sip:user@127.0.0.1:7012?Route=%3Csip:sip.example.com%3E>", expires=600)
    c = [x for x in r.all("contact") if "7012" in x][0]
    assert "?Route=%3Csip:sip.example.com%3E>" in c


def test_short_expiry_runs_out(server_factory):
    s = server_factory(extra=["--min-expires", "1"]).start()
    s.user_add("alice@a.test", "secret")
    ua = s.ua("alice", "secret")
    assert ua.register(expires=2).status == 200
    assert wait_for(lambda: "alice@a.test" in reg_list(s), 5)
    assert wait_for(lambda: "alice@a.test" not in reg_list(s), 20)
    # reg list hides an expired row at once; the sweep that logs it runs within ~5 s
    assert wait_for(lambda: "expired alice@a.test" in s.read_log(), 10)
    r = ua.register(contact=None, expires=None)
    assert r.all("contact") == []
    ua.close()


@pytest.mark.parametrize("sig", [15, 9])
def test_bindings_survive_restart(server_factory, sig):
    s = server_factory().start()
    s.user_add("alice@a.test", "secret")
    ua = s.ua("alice", "secret")
    assert ua.register(expires=600).status == 200
    # the store writes behind: within one flush interval (<= 1 s) the row is on disk
    assert wait_for(lambda: "alice@a.test" in reg_list(s), 5)
    rc = s.stop(sig=sig)
    assert rc == (0 if sig == 15 else -9)
    s.start()
    r = ua.register(contact=None, expires=None)
    assert r.status == 200 and len(r.all("contact")) == 1 and ua.hostport in r.all("contact")[0]
    assert "1 bindings loaded" in s.read_log()
    ua.close()


def test_reg_list_shows_source_and_transport(server, alice):
    assert alice.register(expires=600).status == 200
    out = wait_for(lambda: reg_list(server) if "alice" in reg_list(server) else None, 5)
    line = [l for l in out.splitlines() if "alice@a.test" in l][0]
    assert f"sip:alice@{alice.hostport}" in line and alice.hostport in line and "UDP" in line.upper()


def test_sipp_registrations_with_imported_users(server, tmp_path):
    """SIPp registers 200 imported users with MD5 digest, as the benchmark does."""
    users = tmp_path / "users.csv"
    users.write_text("".join(f"u{i:03d}@a.test,pw{i:03d}\n" for i in range(200)))
    r = parley("user", "import", str(users), db=server.db)
    assert r.returncode == 0 and "200" in r.stdout, r.stderr
    stats = run_sipp("reg_auth.xml", f"127.0.0.1:{server.port}", tmp_path,
                     "SEQUENTIAL\n" + "".join(f"u{i:03d};pw{i:03d};5090;a.test\n" for i in range(200)),
                     calls=200, rate=100, limit=20, timeout=120)
    assert int(stats["SuccessfulCall(C)"]) == 200
    assert int(stats["FailedCall(C)"]) == 0
    assert wait_for(lambda: reg_list(server).count("a.test") >= 200, 10)
