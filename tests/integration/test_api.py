"""test_api.py: the HTTP admin endpoint's logins and JSON API against the real binary: admin
accounts made with `parley admin`, sessions and bearer tokens, the CSRF header, the
failed-login limit, https with the transports' certificate, users added over the API that
register at once, bindings removed, call history, active calls, captured messages, the
event stream, metrics-auth and [http] changes taken on SIGHUP."""
import http.client
import json
import os
import signal
import socket
import ssl
import threading
import time
import urllib.parse

import pytest

from conftest import parley, phones, wait_for, wait_log
from sipua import SDP, callee_answer, free_port, is_req, is_resp, rand, ring

ADMIN, ADMIN_PW = "root", "s3cret-admin"


def tcp_port():
    return free_port(tcp=True)


class Client:
    """HTTP(S) requests to one endpoint, keeping the session cookie like a browser."""

    def __init__(self, port, https=False, cafile=None):
        self.port, self.https, self.cafile = port, https, cafile
        self.cookie = None
        self.last_set_cookie = None

    def req(self, method, path, body=None, headers=None, cookie=True, raw=None):
        """(status, headers, parsed JSON or raw bytes)."""
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        if cookie and self.cookie:
            h["Cookie"] = f"parley_session={self.cookie}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if self.https:
            ctx = ssl.create_default_context(cafile=self.cafile)
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=15, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            sc = r.getheader("Set-Cookie")
            if sc:
                self.last_set_cookie = sc
            ctype = r.getheader("Content-Type") or ""
            return r.status, r, json.loads(text) if ctype.startswith("application/json") and text else text
        finally:
            c.close()

    def login(self, name=ADMIN, password=ADMIN_PW):
        st, r, body = self.req("POST", "/api/login", {"name": name, "password": password}, cookie=False)
        if st == 200:
            sc = r.getheader("Set-Cookie")
            self.cookie = sc.split(";", 1)[0].split("=", 1)[1]
        return st, body

    def change(self, method, path, body=None, raw=None):
        """A change made with the cookie, as the dashboard makes it (X-Parley: 1)."""
        return self.req(method, path, body, headers={"X-Parley": "1"}, raw=raw)


def admin_add(db, name=ADMIN, password=ADMIN_PW):
    r = parley("admin", "add", name, "--password", password, db=db)
    assert r.returncode == 0, r.stderr


def admin_token(db, name=ADMIN):
    r = parley("admin", "token", name, db=db)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def endpoint(server_factory):
    """A Parley with the endpoint on a free port, an admin root, and a client (not logged
    in) as s.client; the port as s.http_port."""
    port = tcp_port()
    s = server_factory(extra=["--http", f"127.0.0.1:{port}"])
    admin_add(s.db)
    s.start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    s.client = Client(port)
    s.http_port = port
    return s


@pytest.fixture
def api(server_factory):
    return endpoint(server_factory)


PROTECTED = [("GET", "/api/me"), ("POST", "/api/logout"), ("GET", "/api/registrations"),
             ("DELETE", "/api/registrations?aor=a@a.test&contact=sip:x@1.2.3.4"), ("GET", "/api/calls"),
             ("GET", "/api/calls/active"), ("GET", "/api/calls/abc/messages"), ("GET", "/api/users"),
             ("POST", "/api/users"), ("PUT", "/api/users/a@a.test"), ("DELETE", "/api/users/a@a.test"),
             ("POST", "/api/users/import"), ("GET", "/api/peers"), ("GET", "/api/stats"),
             ("GET", "/api/events")]


def test_every_api_path_needs_credentials(api):
    c = api.client
    for method, path in PROTECTED:
        st, _, body = c.req(method, path, {"x": 1} if method in ("POST", "PUT") else None)
        assert st == 401, (method, path, st, body)
        assert "error" in body
    # A made-up session id and a made-up token are refused too.
    c.cookie = "A" * 43
    assert c.req("GET", "/api/me")[0] == 401
    c.cookie = None
    assert c.req("GET", "/api/me", headers={"Authorization": "Bearer " + "B" * 43})[0] == 401
    # What needs none: /health, /metrics (metrics-auth is off by default).
    assert c.req("GET", "/health")[0] == 200
    assert c.req("GET", "/metrics")[0] == 200


def test_login_session_logout(api):
    c = api.client
    st, body = c.login(ADMIN, "wrong")
    assert st == 401 and body == {"error": "bad name or password"}
    wait_log(api, f"admin login failed for {ADMIN} from 127.0.0.1: bad password")
    st, body = c.login("nobody", "x")
    assert st == 401
    wait_log(api, "admin login failed for nobody from 127.0.0.1: no such admin")
    st, body = c.login()
    assert st == 200 and body == {"name": ADMIN}
    sc = c.last_set_cookie
    assert "HttpOnly" in sc and "SameSite=Strict" in sc and "Path=/" in sc and "Secure" not in sc
    st, _, body = c.req("GET", "/api/me")
    assert st == 200 and body == {"name": ADMIN}
    # A change with the cookie but without the header is refused (CSRF guard)...
    st, _, body = c.req("POST", "/api/logout")
    assert st == 403, body
    assert c.req("GET", "/api/me")[0] == 200
    # ...with it, it works, and the session is over.
    st, _, _ = c.change("POST", "/api/logout")
    assert st == 204
    assert c.req("GET", "/api/me")[0] == 401


def test_cookie_changes_need_x_parley_tokens_do_not(api):
    c = api.client
    assert c.login()[0] == 200
    st, _, _ = c.req("POST", "/api/users", {"user": "carol@a.test", "password": "pw"})
    assert st == 403
    st, _, _ = c.req("POST", "/api/users", {"user": "carol@a.test", "password": "pw"}, headers={"X-Parley": "0"})
    assert st == 403
    st, _, _ = c.change("POST", "/api/users", {"user": "carol@a.test", "password": "pw"})
    assert st == 201
    # A bearer token needs no header: no browser sends it on its own.
    tok = admin_token(api.db)
    t = Client(api.http_port)
    st, _, _ = t.req("DELETE", "/api/users/carol@a.test", headers={"Authorization": f"Bearer {tok}"})
    assert st == 204


def test_failed_logins_are_limited(api):
    c = api.client
    for _ in range(5):
        assert c.login(ADMIN, "wrong")[0] == 401
    # The sixth is refused before any check, even with the right password.
    st, body = c.login()
    assert st == 429, body
    wait_log(api, f"admin login failed for {ADMIN} from 127.0.0.1: rate-limited")
    # Tokens from that source wait too.
    tok = admin_token(api.db)
    assert c.req("GET", "/api/me", headers={"Authorization": f"Bearer {tok}"})[0] == 429


def test_token_made_while_serving(api):
    tok = admin_token(api.db)
    assert len(tok) >= 43
    t = Client(api.http_port)
    st, _, body = t.req("GET", "/api/me", headers={"Authorization": f"Bearer {tok}"})
    assert st == 200 and body == {"name": ADMIN}
    # Only a hash is kept: the token itself is nowhere in the database.
    with open(api.db, "rb") as f:
        assert tok.encode() not in f.read()
    # Deleting the admin revokes its tokens (read again within 30 s; a miss reads at once).
    assert parley("admin", "del", ADMIN, db=api.db).returncode == 0
    bad = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    assert t.req("GET", "/api/me", headers={"Authorization": f"Bearer {bad}"})[0] == 401
    assert t.req("GET", "/api/me", headers={"Authorization": f"Bearer {tok}"})[0] == 401


def test_admin_cli(tmp_path):
    db = str(tmp_path / "p.db")
    r = parley("admin", "add", "ops", input="pw-from-stdin\n", db=db)
    assert r.returncode == 0, r.stderr
    assert parley("admin", "add", "ops", "--password", "x", db=db).returncode == 1
    assert parley("admin", "add", "bad name", "--password", "x", db=db).returncode == 2
    assert parley("admin", "add", db=db).returncode == 2
    r = parley("admin", "token", "ops", "--password", "x", db=db)
    assert r.returncode == 2 and "--password" in r.stderr
    assert parley("admin", "token", "ops", db=db).returncode == 0
    r = parley("admin", "list", db=db)
    assert r.returncode == 0 and "ops" in r.stdout
    assert parley("admin", "passwd", "ops", "--password", "new", db=db).returncode == 0
    assert parley("admin", "passwd", "nobody", "--password", "new", db=db).returncode == 1
    r = parley("admin", "frob", db=db)
    assert r.returncode == 2 and "admin" in r.stderr
    assert parley("admin", "del", "ops", db=db).returncode == 0
    assert parley("admin", "del", "ops", db=db).returncode == 1


def announced(c, path, length):
    """The status a POST with Content-Length: length gets before its body is sent (none
    is: a refused body must not be read)."""
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as k:
        k.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nCookie: parley_session={c.cookie}\r\nX-Parley: 1\r\n"
                  f"Content-Length: {length}\r\n\r\n".encode())
        k.settimeout(3)
        try:
            head = k.recv(4096)
        except socket.timeout:
            return None  # waiting for the body
        return int(head.split(b" ", 2)[1])


def test_users_over_the_api_register_at_once(api):
    c = api.client
    assert c.login()[0] == 200
    # A phone asks for carol before she exists: the server's cache remembers "no such user".
    ghost = api.ua("carol", "pw1")
    assert ghost.register().status == 403
    ghost.close()
    st, _, _ = c.change("POST", "/api/users", {"user": "carol@a.test", "password": "pw1"})
    assert st == 201
    carol = api.ua("carol", "pw1")
    assert carol.register().status == 200
    carol.close()
    assert c.change("POST", "/api/users", {"user": "carol@a.test", "password": "x"})[0] == 409
    assert c.change("POST", "/api/users", {"user": "carol", "password": "x"})[0] == 400
    assert c.change("POST", "/api/users", {"user": "dave@elsewhere.test", "password": "x"})[0] == 400
    assert c.change("POST", "/api/users", raw=b"not json")[0] == 400
    st, _, body = c.req("GET", "/api/users")
    assert st == 200 and {"user": "carol@a.test"} in body
    # A new password works at once; the old one no longer does.
    assert c.change("PUT", "/api/users/carol%40a.test", {"password": "pw2"})[0] == 204
    assert api.ua("carol", "pw1").register().status == 403
    assert api.ua("carol", "pw2").register().status == 200
    assert c.change("PUT", "/api/users/nobody@a.test", {"password": "pw2"})[0] == 404
    # Import: good lines added, bad ones reported by line.
    body = b"# users\nerin@a.test,pw-e\nno-comma\ncarol@a.test,dup\n\nfrank@a.test,pw-f\n"
    st, _, res = c.change("POST", "/api/users/import", raw=body)
    assert st == 200, res
    assert res["added"] == 2
    assert [e["line"] for e in res["errors"]] == [3, 4]
    assert api.ua("erin", "pw-e").register().status == 200
    # Delete: 204, then 404; the user can no longer register.
    assert c.change("DELETE", "/api/users/carol@a.test")[0] == 204
    assert c.change("DELETE", "/api/users/carol@a.test")[0] == 404
    assert api.ua("carol", "pw2").register().status == 403
    # The CLI sees the same users.
    out = parley("user", "list", db=api.db).stdout
    assert "erin@a.test" in out and "frank@a.test" in out and "carol@a.test" not in out
    # An import body of almost 1 MB is read whole (here mostly comments)...
    big = b"".join(b"# %06d %s\n" % (i, b"x" * 90) for i in range(10000)) + b"gina@a.test,pw-g\n"
    assert 900 * 1024 < len(big) < 1024 * 1024
    st, _, res = c.change("POST", "/api/users/import", raw=big)
    assert st == 200 and res == {"errors": [], "added": 1}, res
    # ...one over 1 MB is refused before it is read; other bodies over 16 KB too.
    assert announced(c, "/api/users/import", 1024 * 1024 + 1) == 413
    assert announced(c, "/api/users", 17 * 1024) == 413
    assert announced(c, "/api/users", 100) != 413


def test_registrations_listed_and_removed(api):
    c = api.client
    assert c.login()[0] == 200
    alice, bob = phones(api, "alice", "bob")
    st, _, regs = c.req("GET", "/api/registrations")
    assert st == 200 and sorted(r["aor"] for r in regs) == ["alice@a.test", "bob@a.test"]
    r = next(r for r in regs if r["aor"] == "alice@a.test")
    assert set(r) >= {"aor", "contact", "source", "transport", "expires", "user_agent", "instance", "reg_id",
                      "connection"}
    assert r["transport"] == "udp" and r["source"] == f"127.0.0.1:{alice.port}" and 0 < r["expires"] <= 3600
    st, _, only = c.req("GET", "/api/registrations?user=alice")
    assert [x["aor"] for x in only] == ["alice@a.test"]
    q = urllib.parse.urlencode({"aor": "alice@a.test", "contact": r["contact"]})
    assert c.change("DELETE", "/api/registrations?" + q)[0] == 204
    assert c.change("DELETE", "/api/registrations?" + q)[0] == 404
    assert c.change("DELETE", "/api/registrations?aor=alice@a.test")[0] == 400
    st, _, regs = c.req("GET", "/api/registrations")
    assert [x["aor"] for x in regs] == ["bob@a.test"]
    wait_log(api, "unregistered alice@a.test contact")
    # Persisted: the database forgets it too (written behind).
    assert wait_for(lambda: "alice@a.test" not in parley("reg", "list", db=api.db).stdout, 5)
    # A call to alice now finds nobody.
    alice.close()
    bob.close()


def busy_call(caller, callee, target="sip:bob@a.test"):
    c, inv = ring(caller, callee, target)
    callee_answer(callee, inv, 486, "Busy Here", rand(8))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)
    return c.call_id


def answered_call(caller, callee, target="sip:bob@a.test"):
    c, inv = ring(caller, callee, target)
    callee_answer(callee, inv, 200, "OK", rand(8), SDP.encode())
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert callee.recv(3, is_req("ACK")) is not None
    return c, inv


def test_call_history_paging_and_filters(api):
    c = api.client
    assert c.login()[0] == 200
    alice, bob, carol = phones(api, "alice", "bob", "carol")
    ids = [busy_call(alice, bob) for _ in range(3)]
    cid = busy_call(carol, bob)
    ok, inv = answered_call(alice, carol, "sip:carol@a.test")
    assert wait_for(lambda: c.req("GET", "/api/calls")[2]["total"] == 5, 5)
    st, _, page = c.req("GET", "/api/calls?limit=2")
    assert st == 200 and page["total"] == 5 and len(page["calls"]) == 2
    first = page["calls"][0]
    assert set(first) >= {"call_id", "caller", "callee", "start", "answer", "end", "result", "duration", "media"}
    # Newest first: the answered call, still going (end null).
    assert first["call_id"] == ok.call_id and first["result"] == "answered" and first["end"] is None
    assert isinstance(first["answer"], int) and first["answer"] >= first["start"]
    st, _, rest = c.req("GET", "/api/calls?limit=2&offset=4")
    assert len(rest["calls"]) == 1 and rest["calls"][0]["call_id"] == ids[0]
    st, _, busy = c.req("GET", "/api/calls?result=busy")
    assert busy["total"] == 4 and all(x["result"] == "busy" and x["answer"] is None for x in busy["calls"])
    st, _, mine = c.req("GET", "/api/calls?user=carol")
    assert mine["total"] == 2
    st, _, one = c.req("GET", "/api/calls?call_id=" + urllib.parse.quote(cid))
    assert one["total"] == 1 and one["calls"][0]["caller"] == "carol@a.test"
    assert c.req("GET", "/api/calls?limit=0")[0] == 400
    assert c.req("GET", "/api/calls?limit=x")[0] == 400


class Events:
    """An /api/events stream read on a thread: the events it got, as (event, data)."""

    def __init__(self, port, token):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        self.events = []
        self.raw = b""
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return
                self.raw += d
                for block in self.raw.split(b"\n\n")[len(self.events):-1]:
                    ev, data = None, None
                    for line in block.split(b"\n"):
                        if line.startswith(b"event: "):
                            ev = line[7:].decode()
                        elif line.startswith(b"data: "):
                            data = json.loads(line[6:])
                    self.events.append((ev, data))
        except OSError:
            return

    def close(self):
        self.sock.close()


def test_active_call_messages_and_events(api):
    c = api.client
    assert c.login()[0] == 200
    alice, bob = phones(api, "alice", "bob")
    ev = Events(api.http_port, admin_token(api.db))
    assert wait_for(lambda: b"text/event-stream" in ev.raw, 5), ev.raw
    call, inv = ring(alice, bob)
    tag = rand(8)
    bob.reply(inv, 180, "Ringing", to_tag=tag)
    assert alice.recv(5, is_resp("INVITE", 180)) is not None
    st, _, act = c.req("GET", "/api/calls/active")
    assert st == 200 and len(act) == 1, act
    assert act[0]["call_id"] == call.call_id and act[0]["state"] == "ringing" and act[0]["answer"] is None
    assert act[0]["caller"] == "alice@a.test" and act[0]["callee"] == "bob@a.test"
    # The event stream saw the INVITE come in and go out, and the 180.
    def seen(first, d):
        return any(e == "sip" and x["call_id"] == call.call_id and x["dir"] == d and x["first_line"].startswith(first)
                   for e, x in ev.events)
    assert wait_for(lambda: seen("INVITE ", "in") and seen("INVITE ", "out") and seen("SIP/2.0 180", "out"), 5), \
        ev.events
    e = next(x for k, x in ev.events if k == "sip" and x["call_id"] == call.call_id)
    assert set(e) >= {"call_id", "time", "dir", "proto", "local", "remote", "first_line"} and e["proto"] == "udp"
    callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
    r = call.final()
    assert r is not None and r.status == 200
    call.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    st, _, act = c.req("GET", "/api/calls/active")
    assert len(act) == 1 and act[0]["state"] == "answered" and isinstance(act[0]["answer"], int)
    # The ladder of the call, oldest first, from the capture ring.
    st, _, msgs = c.req("GET", "/api/calls/" + urllib.parse.quote(call.call_id) + "/messages")
    assert st == 200 and msgs[0]["first_line"].startswith("INVITE ") and msgs[0]["dir"] == "in"
    assert any(m["first_line"].startswith("SIP/2.0 200") and m["dir"] == "out" for m in msgs)
    assert all(set(m) >= {"time", "dir", "proto", "local", "remote", "first_line", "text"} for m in msgs)
    assert "Call-ID: " + call.call_id in msgs[0]["text"] or "i: " + call.call_id in msgs[0]["text"]
    assert c.req("GET", "/api/calls/nosuchcall/messages")[2] == []
    alice.cseq += 1
    alice.send_raw(alice.build("BYE", call.remote_target, to=call.to, call_id=call.call_id, cseq=alice.cseq,
                               contact=False, headers=[f"Route: {', '.join(call.route)}"]))
    bye = bob.recv(3, is_req("BYE"))
    assert bye is not None
    bob.reply(bye, 200, "OK")
    assert alice.final(3, cseq_method="BYE").status == 200
    assert wait_for(lambda: c.req("GET", "/api/calls/active")[2] == [], 5)
    ev.close()


def test_stuck_event_client_is_dropped(server_factory):
    """A client that opens /api/events and never reads is dropped once its queue is full;
    the server goes on serving SIP and HTTP."""
    port = tcp_port()
    s = server_factory(extra=["--http", f"127.0.0.1:{port}", "--rate-limit", "0"])
    admin_add(s.db)
    s.start()
    tok = admin_token(s.db)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    wait_log(s, "follows events from 127.0.0.1")
    ua = s.ua("nobody")
    dropped = False
    for _ in range(60):
        for _ in range(100):
            ua.send_raw(ua.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False))
        while ua.recv(0.2, is_resp("OPTIONS")) is not None:
            pass
        if "event stream to 127.0.0.1 dropped" in s.read_log():
            dropped = True
            break
    assert dropped, s.read_log()[-2000:]
    ua.send_raw(ua.build("OPTIONS", f"sip:{s.host}:{s.port}", contact=False))
    assert ua.final(5).status == 200
    assert Client(port).req("GET", "/health")[0] == 200
    stuck.close()


def test_stats_and_peers(server_factory):
    port = tcp_port()
    s = server_factory(extra=["--http", f"127.0.0.1:{port}", "--peer", "b.test=sip:127.0.0.1:5999;relay",
                              "--peer", "c.test=sip:127.0.0.1:5998"])
    admin_add(s.db)
    s.start()
    tok = admin_token(s.db)
    t = Client(port)
    auth = {"Authorization": f"Bearer {tok}"}
    st, _, peers = t.req("GET", "/api/peers", headers=auth)
    assert st == 200
    assert {(p["domain"], p["uri"], p["relay"]) for p in peers} == {
        ("b.test", "sip:127.0.0.1:5999;relay", True), ("c.test", "sip:127.0.0.1:5998", False)}
    assert all(p["state"] == "configured" for p in peers)
    alice, = phones(s, "alice")
    st, _, stats = t.req("GET", "/api/stats", headers=auth)
    assert st == 200 and stats["bindings"] == 1 and stats["requests"]["REGISTER"] >= 2
    assert stats["responses"]["200"] >= 1 and stats["connections"]["tcp"] == 0 and stats["uptime_s"] >= 0


def test_https_with_the_transport_certificate(server_factory):
    port, tls = tcp_port(), tcp_port()
    s = server_factory(extra=["--listen", f"tls:127.0.0.1:{tls}", "--http", f"https:127.0.0.1:{port}"])
    admin_add(s.db)
    s.start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port} (https)")
    c = Client(port, https=True, cafile=s.db + "-tls.crt")
    st, body = c.login()
    assert st == 200, body
    assert "Secure" in c.last_set_cookie
    st, _, me = c.req("GET", "/api/me")
    assert st == 200 and me == {"name": ADMIN}
    # Plain HTTP on that port gets no answer it could use.
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        plain.request("GET", "/health")
        r = plain.getresponse()
        assert r.status != 200
        raise ConnectionError("answered plain HTTP with an error, as expected")


def test_https_without_a_certificate_exits_1(server_factory, tmp_path):
    port = tcp_port()
    r = parley("serve", "--listen", f"udp:127.0.0.1:{free_port()}", "--http", f"https:127.0.0.1:{port}",
               db=str(tmp_path / "n.db"))
    assert r.returncode == 1 and "--tls-cert" in r.stderr, r.stderr


def test_metrics_auth_and_listen_change_on_sighup(server_factory, tmp_path):
    p1, p2 = tcp_port(), tcp_port()
    conf = tmp_path / "parley.conf"
    conf.write_text(f"[server]\ndomain = a.test\n[http]\nlisten = 127.0.0.1:{p1}\n")
    s = server_factory(extra=["--config", str(conf)])
    admin_add(s.db)
    s.start()
    c1 = Client(p1)
    assert c1.login()[0] == 200
    assert c1.req("GET", "/metrics", cookie=False)[0] == 200
    # An event stream open on the old listener (suspended, waiting for events) is ended.
    ev = Events(p1, admin_token(s.db))
    assert wait_for(lambda: b"text/event-stream" in ev.raw, 5), ev.raw
    conf.write_text(f"[server]\ndomain = a.test\n[http]\nlisten = 127.0.0.1:{p2}\nmetrics-auth = true\n")
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{p2}")
    wait_log(s, "[http] metrics-auth: false -> true")
    ev.th.join(10)
    assert not ev.th.is_alive(), "the event stream of the old listener is still open"
    c2 = Client(p2)
    st, r, _ = c2.req("GET", "/metrics")
    assert st == 401 and "Bearer" in r.getheader("WWW-Authenticate")
    tok = admin_token(s.db)
    st, _, text = c2.req("GET", "/metrics", headers={"Authorization": f"Bearer {tok}"})
    assert st == 200 and b"parley_uptime_seconds" in text
    # The session survived the new listener; the old port is closed.
    c2.cookie = c1.cookie
    assert c2.req("GET", "/api/me")[0] == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p1), timeout=2).close()
    assert c2.req("GET", "/health")[0] == 200


def test_sip_answers_while_a_login_is_checked(api):
    """The Argon2id check runs off the event loop: OPTIONS are answered during logins."""
    results = []

    def logins():
        for _ in range(4):
            results.append(Client(api.http_port).login()[0])
    th = threading.Thread(target=logins)
    th.start()
    ua = api.ua("nobody")
    answered = 0
    while th.is_alive() or answered == 0:
        ua.send_raw(ua.build("OPTIONS", f"sip:{api.host}:{api.port}", contact=False))
        r = ua.final(5)
        assert r is not None and r.status == 200
        answered += 1
        # 100 a second: sent back to back they went over the per-source rate limit (200
        # datagrams a second, bursts of 400) within a second, and one was dropped as a flood
        time.sleep(0.01)
    th.join()
    assert results == [200] * 4
    assert answered >= 1
