"""conftest.py: starts the real parley binary on free loopback ports with a temporary
database, and offers SIP user agents to talk to it."""
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sipua import UA, free_port  # noqa: E402

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
