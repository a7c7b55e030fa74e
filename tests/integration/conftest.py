"""conftest.py: starts the real parley binary on free loopback ports with a temporary
database, and offers SIP user agents to talk to it."""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sipua import UA, free_port, wait_for  # noqa: E402,F401 (wait_for: tests import it from here)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PARLEY_BIN", os.path.join(ROOT, "build", "parley"))


def parley(*args, db=None, input=None, check=False):
    """Runs a parley subcommand; returns the CompletedProcess."""
    cmd = [BIN] + list(args)
    if db:
        cmd += ["--db", db]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60, check=check)


class Server:
    """A running `parley serve` with its log file, database and address."""

    def __init__(self, tmp, domains=("a.test",), host="127.0.0.1", port=None, extra=(), name="parley"):
        self.tmp = tmp
        self.host = host
        self.port = port or free_port(host)
        self.db = os.path.join(tmp, f"{name}.db")
        self.logpath = os.path.join(tmp, f"{name}.log")
        self.domains = list(domains)
        self.extra = list(extra)
        self.proc = None

    @property
    def addr(self):
        return (self.host, self.port)

    @property
    def listen(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp:{h}:{self.port}"

    def cmd(self):
        c = [BIN, "serve", "--listen", self.listen, "--db", self.db, "--log-level", "debug"]
        for d in self.domains:
            c += ["--domain", d]
        return c + self.extra

    def start(self, wait=True):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.cmd(), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        ua = UA(self.addr, host=self.host)
        try:
            end = time.time() + timeout
            while time.time() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"parley exited {self.proc.returncode}: {self.read_log()}")
                ua.send_raw(ua.build("OPTIONS", f"sip:{self.listen[4:]}", contact=False))
                r = ua.final(timeout=0.3)
                if r is not None:
                    return
            raise RuntimeError("parley did not answer OPTIONS: " + self.read_log())
        finally:
            ua.close()

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=15, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        if self.proc:
            self.log.close()
        self.proc = None
        return rc

    def user_add(self, user, password):
        r = parley("user", "add", user, "--password", password, db=self.db)
        assert r.returncode == 0, r.stderr
        return r

    def ua(self, user=None, password=None, domain=None, **kw):
        return UA(self.addr, user=user, domain=domain or self.domains[0], password=password,
                  host=self.host, **kw)


def add_users(server, *users, password="pw"):
    """Adds each user@<the server's first domain> with the one password."""
    for u in users:
        server.user_add(f"{u}@{server.domains[0]}", password)


def registered(server, user, password="pw", **kw):
    """A UA for user at server, registered (the 200 asserted)."""
    return register_ok(server.ua(user, password, **kw))


def register_ok(ua):
    """ua (any of the UAs: UDP, TCP/TLS, WebSocket) after a REGISTER answered 200."""
    r = ua.register()
    assert r is not None and r.status == 200, r
    return ua


def stream_server(server_factory, scheme, *extra, host="127.0.0.1", **kw):
    """A started server on UDP and on SCHEME (tcp, tls, ws, wss) at one free port number."""
    from sipua import free_port_both
    port = free_port_both(host)
    h = f"[{host}]" if ":" in host else host
    return server_factory(port=port, host=host, extra=["--listen", f"{scheme}:{h}:{port}", *extra], **kw).start()


def phones(server, *users, password="pw"):
    """Adds each user named once and registers one phone per name given; returns the UAs in order."""
    add_users(server, *dict.fromkeys(users), password=password)
    return [registered(server, u, password) for u in users]


def call_records(server):
    """What `parley calls` lists now."""
    return parley("calls", db=server.db).stdout


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
    """Waits until text is in the server's log; fails with the log's tail."""
    end = time.time() + timeout
    while time.time() < end:
        if text in server.read_log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged:\n{server.read_log()[-3000:]}")


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(**kw):
        s = Server(str(tmp_path), **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        rc = s.stop()
        # A sanitizer report or a crash at shutdown fails the test that ran the server.
        log = s.read_log() if os.path.exists(s.logpath) else ""
        assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log[-4000:]
        assert rc in (0, None), f"parley exited {rc}: {log[-4000:]}"


@pytest.fixture
def server(server_factory):
    return server_factory().start()


def answer_and_caller_hangs_up(server, alice, bob, c, inv, timeout=5):
    """bob's phone answers the INVITE inv of alice's call c (180, then 200 with SDP), the ACK
    reaches it, then alice hangs up: her BYE follows the route set to bob, who answers 200.
    Each step asserted, and the call's answered and ended log lines."""
    from sipua import SDP, is_req, is_resp, rand
    tag = rand(8)
    bob.reply(inv, 180, "Ringing", to_tag=tag)
    assert alice.recv(timeout, is_resp("INVITE", 180)) is not None
    bob.reply(inv, 200, "OK", to_tag=tag, headers=[f"Contact: <sip:bob@{bob.hostport}>", "Content-Type: application/sdp"],
              body=SDP)
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(timeout, is_req("ACK")) is not None, "the ACK did not reach the callee"
    wait_log(server, "call: answered alice@a.test -> bob@a.test")
    alice.cseq += 1
    alice.send_raw(alice.build("BYE", c.remote_target, to=c.to, call_id=c.call_id, cseq=alice.cseq, contact=False,
                               headers=[f"Route: {', '.join(c.route)}"]))
    bye = bob.recv(timeout, is_req("BYE"))
    assert bye is not None, "the caller's BYE did not reach the callee"
    bob.reply(bye, 200, "OK")
    r = alice.final(timeout, cseq_method="BYE")
    assert r is not None and r.status == 200
    wait_log(server, "call: ended alice@a.test -> bob@a.test")
