"""test_api_auth.py: how logins of the HTTP admin endpoint end and how failed ones are
limited, against the real binary: sessions that die when their admin is deleted or given
another password, event streams closed at logout, the per-source and global failed-login
limits, a success forgetting the failures, one source's share of the password checks, the
paged registrations and the capped history count."""
import http.client
import json
import socket
import sqlite3
import threading
import time

import pytest

from conftest import parley, phones, wait_for, wait_log
from sipua import free_port

ADMIN, ADMIN_PW = "root", "s3cret-admin"


def req(port, method, path, body=None, cookie=None, token=None, source=None, timeout=15):
    """(status, parsed JSON or raw bytes, Set-Cookie) of one request from source (an
    address on loopback; None: the default)."""
    h = {}
    if body is not None:
        h["Content-Type"] = "application/json"
    if cookie:
        h["Cookie"] = f"parley_session={cookie}"
    if token:
        h["Authorization"] = f"Bearer {token}"
    if method not in ("GET", "HEAD") and cookie:
        h["X-Parley"] = "1"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=h)
        r = c.getresponse()
        text = r.read()
        ctype = r.getheader("Content-Type") or ""
        return r.status, json.loads(text) if ctype.startswith("application/json") and text else text, \
            r.getheader("Set-Cookie")
    finally:
        c.close()


def login(port, name=ADMIN, password=ADMIN_PW, source=None):
    """(status, session id or None)."""
    st, _, sc = req(port, "POST", "/api/login", {"name": name, "password": password}, source=source)
    return st, sc.split(";", 1)[0].split("=", 1)[1] if st == 200 and sc else None


def admin_add(db, name, password):
    r = parley("admin", "add", name, input=password + "\n", db=db)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def api(server_factory):
    port = free_port(tcp=True)
    s = server_factory(extra=["--http", f"127.0.0.1:{port}"])
    admin_add(s.db, ADMIN, ADMIN_PW)
    s.start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    s.http_port = port
    return s


def test_sessions_end_with_admin_del_and_passwd(api):
    port = api.http_port
    admin_add(api.db, "ops", "ops-pw-1")
    st, root = login(port)
    assert st == 200
    st, ops = login(port, "ops", "ops-pw-1")
    assert st == 200
    assert req(port, "GET", "/api/me", cookie=root)[:2] == (200, {"name": ADMIN})
    assert req(port, "GET", "/api/me", cookie=ops)[:2] == (200, {"name": "ops"})
    assert parley("admin", "del", ADMIN, db=api.db).returncode == 0
    r = parley("admin", "passwd", "ops", input="ops-pw-2\n", db=api.db)
    assert r.returncode == 0, r.stderr
    # The admins' rows are read again at most every 30 s: both sessions end by then.
    assert wait_for(lambda: req(port, "GET", "/api/me", cookie=root)[0] == 401, 45)
    assert wait_for(lambda: req(port, "GET", "/api/me", cookie=ops)[0] == 401, 45)
    wait_log(api, f"session of admin {ADMIN} ended: the admin was deleted")
    wait_log(api, "session of admin ops ended: the admin's password was changed")
    # The new password logs in; the old one does not.
    assert login(port, "ops", "ops-pw-1")[0] == 401
    st, ops2 = login(port, "ops", "ops-pw-2")
    assert st == 200 and req(port, "GET", "/api/me", cookie=ops2)[0] == 200


def test_event_stream_closed_at_logout(api):
    port = api.http_port
    st, sid = login(port)
    assert st == 200
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: parley_session={sid}\r\n\r\n".encode())
        got = b""
        while b": parley events" not in got:
            d = sock.recv(4096)
            assert d, got
            got += d
        assert b" 200 " in got.split(b"\r\n", 1)[0]
        assert req(port, "POST", "/api/logout", cookie=sid)[0] == 204
        # The stream ends at its next ping (every 15 s) at the latest; pings keep coming
        # while it lives, so the wait is bounded here, well past that.
        end = time.monotonic() + 50
        while time.monotonic() < end:
            d = sock.recv(4096)
            if not d:
                break
            got += d
        else:
            pytest.fail("the event stream outlived its session's logout")
    except socket.timeout:
        pytest.fail("the event stream outlived its session's logout")
    finally:
        sock.close()
    wait_log(api, "event stream to 127.0.0.1 closed: its login has ended")


def test_success_forgets_the_failures(api):
    port = api.http_port
    for _ in range(4):
        assert login(port, password="wrong")[0] == 401
    assert login(port)[0] == 200
    # Counting starts again: four more failures do not make the source wait.
    for _ in range(4):
        assert login(port, password="wrong")[0] == 401
    assert login(port)[0] == 200


def test_refused_logins_do_not_extend_the_wait(api):
    port = api.http_port
    for _ in range(5):
        assert login(port, password="wrong")[0] == 401
    start = time.monotonic()
    assert login(port)[0] == 429
    # A source that keeps trying (a shared NAT with the real admin behind it) is refused
    # without its wait growing: a minute after the last failure it may try again.
    time.sleep(30)
    assert login(port)[0] == 429
    time.sleep(max(0.0, 62 - (time.monotonic() - start)))
    assert login(port)[0] == 200
    wait_log(api, f"admin login failed for {ADMIN} from 127.0.0.1: rate-limited")


def test_failures_from_many_sources_make_every_source_wait(api):
    port = api.http_port
    tok = parley("admin", "token", ADMIN, db=api.db).stdout.strip()
    # Ten addresses with three tries each: none reaches its own limit of five...
    for i in range(10):
        for _ in range(3):
            assert login(port, password="wrong", source=f"127.0.0.{10 + i}")[0] == 401
    wait_log(api, "admin logins refused from every source for the rest of the minute: 30 failed")
    # ...but together they passed the budget of the minute: a new source waits too, even
    # with the right password.
    assert login(port, source="127.0.0.99")[0] == 429
    # A bearer token cannot be guessed: it still works from anywhere.
    st, body, _ = req(port, "GET", "/api/me", token=tok, source="127.0.0.98")
    assert st == 200 and body == {"name": ADMIN}


def test_one_source_gets_two_password_checks_at_once(api):
    port = api.http_port
    results = []
    lock = threading.Lock()
    go = threading.Barrier(4)

    def one():
        go.wait()
        st = login(port)[0]
        with lock:
            results.append(st)

    ths = [threading.Thread(target=one) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    # Checks take tens of milliseconds each on the KDF thread: of four sent at once, the
    # ones past the running check and one queued behind it are refused, and counted.
    assert sorted(set(results)) == [200, 503], results
    wait_log(api, f"admin login failed for {ADMIN} from 127.0.0.1: too many logins at once from there")


def test_registrations_are_paged(api):
    port = api.http_port
    st, sid = login(port)
    assert st == 200
    phones(api, "alice", "bob", "carol")
    st, all3, _ = req(port, "GET", "/api/registrations", cookie=sid)
    assert st == 200 and len(all3) == 3
    st, first, _ = req(port, "GET", "/api/registrations?limit=2", cookie=sid)
    assert st == 200 and isinstance(first, list) and len(first) == 2
    st, rest, _ = req(port, "GET", "/api/registrations?limit=2&offset=2", cookie=sid)
    assert st == 200 and len(rest) == 1
    assert sorted(r["aor"] for r in first + rest) == sorted(r["aor"] for r in all3)
    assert req(port, "GET", "/api/registrations?limit=0", cookie=sid)[0] == 400
    assert req(port, "GET", "/api/registrations?limit=10001", cookie=sid)[0] == 400
    assert req(port, "GET", "/api/registrations?offset=x", cookie=sid)[0] == 400


def test_history_count_is_capped(server_factory):
    port = free_port(tcp=True)
    s = server_factory(extra=["--http", f"127.0.0.1:{port}"])
    admin_add(s.db, ADMIN, ADMIN_PW)  # makes the database, at the current schema
    db = sqlite3.connect(s.db)
    with db:
        db.executemany("INSERT INTO calls(id, call_id, caller, callee, start_ms, status, reason)"
                       " VALUES(?, ?, 'alice@a.test', 'bob@a.test', ?, 486, 'busy')",
                       [(f"c{i};t;1", f"c{i}", 1000 + i) for i in range(10005)])
    db.close()
    s.start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    st, sid = login(port)
    assert st == 200
    st, page, _ = req(port, "GET", "/api/calls?limit=2&user=bob", cookie=sid)
    assert st == 200 and page["total"] == 10000 and page["total_capped"] is True
    assert [c["call_id"] for c in page["calls"]] == ["c10004", "c10003"]
    st, one, _ = req(port, "GET", "/api/calls?call_id=c17", cookie=sid)
    assert st == 200 and one["total"] == 1 and "total_capped" not in one
    assert one["calls"][0]["start"] == 1017
