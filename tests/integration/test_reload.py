"""test_reload.py: SIGHUP (`parley reload`) reads --config again: a domain added serves a
registration, registrations survive, a bad file is refused with FILE:LINE and the settings
in use are kept, keys that need a restart are said so; the pid file and its absence."""
import os
import re
import time

from conftest import parley, wait_log


def _server(server_factory, tmp_path, text, extra=()):
    conf = tmp_path / "parley.conf"
    conf.write_text(text)
    s = server_factory(domains=(), extra=["--config", str(conf), *extra])
    return s, conf


def _register(s, user, domain):
    ua = s.ua(user, "pw", domain=domain)
    try:
        r = ua.register()
        return r.status if r is not None else None
    finally:
        ua.close()


def _reloaded(s, n):
    """Waits for the n-th 'reloaded' or 'refused' line of the log."""
    end = time.time() + 10
    while time.time() < end:
        if len(re.findall(r"reload: .* (reloaded|refused)", s.read_log())) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("no reload logged:\n" + s.read_log()[-3000:])


def test_domain_added_by_sighup(server_factory, tmp_path):
    s, conf = _server(server_factory, tmp_path, "[server]\ndomain = a.test\n")
    s.user_add("alice@a.test", "pw")
    s.user_add("bob@b.test", "pw")
    s.start()
    assert _register(s, "alice", "a.test") == 200
    assert _register(s, "bob", "b.test") != 200
    conf.write_text("[server]\ndomain = a.test\ndomain = b.test\nlog-level = info\nflush-interval = 150\n")
    r = parley("reload", db=s.db)
    assert r.returncode == 0, r.stderr
    assert f"PID {s.proc.pid}" in r.stdout
    _reloaded(s, 1)
    log = s.read_log()
    assert "[server] domain: a.test -> a.test, b.test" in log, log[-2000:]
    assert "[server] log-level: debug -> info" not in log  # the flag --log-level debug wins
    assert "[server] flush-interval: 200 -> 150 needs a restart; still 200" in log, log[-2000:]
    assert _register(s, "bob", "b.test") == 200
    # alice's binding, made before the reload, is still there (written behind: wait).
    end = time.time() + 5
    out = ""
    while time.time() < end and not ("alice@a.test" in out and "bob@b.test" in out):
        out = parley("reg", "list", db=s.db).stdout
        time.sleep(0.1)
    assert "alice@a.test" in out and "bob@b.test" in out, out


def test_bad_file_keeps_settings(server_factory, tmp_path):
    s, conf = _server(server_factory, tmp_path, "[server]\ndomain = a.test\n")
    s.user_add("alice@a.test", "pw")
    s.user_add("carol@c.test", "pw")
    s.start()
    conf.write_text("[server]\ndomain = c.test\nno-such-key = 1\n")
    s.proc.send_signal(1)
    _reloaded(s, 1)
    log = s.read_log()
    assert f"{conf}:3: unknown key 'no-such-key' in [server]" in log, log[-2000:]
    assert "refused: the settings in use are kept" in log
    assert _register(s, "alice", "a.test") == 200
    assert _register(s, "carol", "c.test") != 200
    # A value a module's check refuses is refused too (a peer that is no URI).
    conf.write_text("[server]\ndomain = c.test\n[peers]\nb.test = http://x\n")
    s.proc.send_signal(1)
    _reloaded(s, 2)
    assert _register(s, "carol", "c.test") != 200
    assert _register(s, "alice", "a.test") == 200
    assert s.proc.poll() is None


def test_reload_pid_file(server_factory, tmp_path):
    pidf = str(tmp_path / "parley.pid")
    s, conf = _server(server_factory, tmp_path, "[server]\ndomain = a.test\n", extra=["--pid-file", pidf])
    s.start()
    with open(pidf) as f:
        assert f.read().strip() == str(s.proc.pid)
    conf.write_text("[server]\ndomain = a.test\ndomain = b.test\n")
    r = parley("reload", "--pid-file", pidf)
    assert r.returncode == 0, r.stderr
    _reloaded(s, 1)
    assert s.stop() == 0
    assert not os.path.exists(pidf)
    r = parley("reload", "--pid-file", pidf)
    assert r.returncode == 1 and "cannot read pid file" in r.stderr
    # No server on the database: said so, exit 1.
    r = parley("reload", db=s.db)
    assert r.returncode == 1 and "no parley serve is running on" in r.stderr, r.stderr


def test_sighup_without_config(server):
    server.proc.send_signal(1)
    wait_log(server, "SIGHUP without --config")
    assert server.proc.poll() is None


def test_peer_added_by_reload(server_factory, tmp_path):
    """A [peers] entry added by a reload carries the next call to the other server; before
    it, the call fails (DNS points at a port nobody answers on)."""
    from sipua import Call, callee_answer, free_port, is_req, rand

    pa, pb = free_port("127.0.0.1"), free_port("127.0.0.2")
    conf = tmp_path / "a.conf"
    conf.write_text("[server]\n")
    a = server_factory(domains=("a.test",), host="127.0.0.1", port=pa, name="a",
                       extra=["--config", str(conf), "--dns", f"127.0.0.1:{free_port()}"])
    b = server_factory(domains=("b.test",), host="127.0.0.2", port=pb, name="b",
                       extra=["--peer", f"a.test=sip:127.0.0.1:{pa}"])
    a.start()
    b.start()
    a.user_add("alice@a.test", "alicepw")
    b.user_add("bob@b.test", "bobpw")
    alice, bob = a.ua("alice", "alicepw"), b.ua("bob", "bobpw")
    try:
        assert alice.register().status == 200 and bob.register().status == 200
        c = Call(alice, "sip:bob@b.test")
        c.start()
        r = c.final(timeout=15)
        assert r is not None and r.status >= 400, r
        c.ack_non2xx(r)
        conf.write_text(f"[server]\n[peers]\nb.test = sip:127.0.0.2:{pb}\n")
        assert parley("reload", db=a.db).returncode == 0
        _reloaded(a, 1)
        assert f"[peers] peer: (none) -> b.test=sip:127.0.0.2:{pb}" in a.read_log()
        c = Call(alice, "sip:bob@b.test")
        c.start()
        inv = bob.recv(5, is_req("INVITE"))
        assert inv is not None, a.read_log()[-2000:]
        callee_answer(bob, inv, 486, "Busy Here", rand(8))
        r = c.final()
        assert r is not None and r.status == 486
        c.ack_non2xx(r)
    finally:
        alice.close()
        bob.close()
