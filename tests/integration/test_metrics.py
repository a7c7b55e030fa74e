"""test_metrics.py: the HTTP endpoint (--http): a real Prometheus server scrapes Parley's
/metrics every second while the test causes SIP traffic, and is asked through its HTTP API
for the figures the test caused; the exposition passes promtool; /health, 404, 405 and a
bad --http."""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import BIN, phones, wait_for, wait_log
from sipua import SDP, callee_answer, free_port, is_req, rand, ring

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def http(method, url, data=None):
    """(status, headers, body) of one HTTP request; 4xx/5xx are answers, not errors."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def tcp_ports(n):
    """n distinct free TCP ports below 60000: held together while picked, so that the
    system cannot hand the same one out twice."""
    held = []
    try:
        while len(held) < n:
            t = socket.socket()
            t.bind(("127.0.0.1", 0))
            if t.getsockname()[1] < 60000:
                held.append(t)
            else:
                t.close()
        return [t.getsockname()[1] for t in held]
    finally:
        for t in held:
            t.close()


@pytest.fixture
def metered(server_factory):
    """A Parley with the HTTP endpoint on a free loopback port; .http is its base URL."""
    port, sip_tcp = tcp_ports(2)
    s = server_factory(extra=["--http", f"127.0.0.1:{port}", "--listen", f"tcp:127.0.0.1:{sip_tcp}"]).start()
    s.http = f"http://127.0.0.1:{port}"
    s.sip_tcp = sip_tcp
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    return s


class Prometheus:
    """A real Prometheus scraping one target every second, its data in a temporary folder."""

    def __init__(self, tmp, target):
        self.port = free_port(tcp=True)
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: parley\n    scrape_interval: 1s\n"
                    "    scrape_timeout: 1s\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        self.logpath = os.path.join(tmp, "prometheus.log")
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(tmp, 'prom-data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        while time.time() < end:
            assert self.proc.poll() is None, "prometheus exited: " + self.read_log()
            try:
                if http("GET", self.url + "/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("prometheus not ready: " + self.read_log())

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def query(self, q):
        """The instant vector of q as [(labels, float value)]."""
        st, _, body = http("GET", self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        assert st == 200, body
        data = json.loads(body)
        assert data["status"] == "success", data
        return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]

    def wait_value(self, q, at_least, timeout=30):
        """Polls q until its one value is at least at_least (it arrives with the next scrapes)."""
        end = time.time() + timeout
        got = None
        while time.time() < end:
            got = self.query(q)
            if len(got) == 1 and got[0][1] >= at_least:
                return got[0][1]
            time.sleep(0.5)
        raise AssertionError(f"{q}: {got}, wanted one value >= {at_least}\n{self.read_log()}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (make deps)")
def test_prometheus_scrapes_what_the_test_caused(metered, tmp_path):
    prom = Prometheus(str(tmp_path), metered.http[len("http://"):])
    try:
        # Prometheus sees the target up before the test causes anything.
        prom.wait_value('up{job="parley"}', 1)
        alice, bob = phones(metered, "alice", "bob")
        # A wrong password: one failure.
        bad = metered.ua("alice", "wrong")
        r = bad.register()
        assert r.status == 403
        bad.close()
        # An OPTIONS to the server itself.
        alice.send_raw(alice.build("OPTIONS", f"sip:{metered.host}:{metered.port}", contact=False))
        r = alice.final()
        assert r is not None and r.status == 200
        # A call, answered and hung up.
        c, inv = ring(alice, bob)
        tag = rand(8)
        callee_answer(bob, inv, 200, "OK", tag, SDP.encode())
        r = c.final()
        assert r is not None and r.status == 200
        c.ack()
        assert bob.recv(3, is_req("ACK")) is not None
        alice.cseq += 1
        alice.send_raw(alice.build("BYE", c.remote_target, to=c.to, call_id=c.call_id, cseq=alice.cseq,
                                   contact=False, headers=[f"Route: {', '.join(c.route)}"]))
        bye = bob.recv(3, is_req("BYE"))
        assert bye is not None
        bob.reply(bye, 200, "OK")
        assert alice.final(3, cseq_method="BYE").status == 200
        wait_log(metered, "call: ended alice@a.test -> bob@a.test")

        # Two registrations (each challenged once) and the failed one: at least 5 REGISTERs.
        prom.wait_value('parley_requests_received_total{method="REGISTER"}', 5)
        prom.wait_value('parley_requests_received_total{method="OPTIONS"}', 1)
        prom.wait_value('parley_requests_received_total{method="INVITE"}', 2)
        prom.wait_value('parley_requests_received_total{method="BYE"}', 1)
        prom.wait_value('parley_auth_failures_total{reason="bad_password"}', 1)
        prom.wait_value('parley_auth_challenges_total', 4)
        prom.wait_value('parley_responses_sent_total{code="401"}', 3)
        prom.wait_value('parley_responses_sent_total{code="407"}', 1)
        prom.wait_value('sum(parley_responses_sent_total{class="2xx"})', 5)
        prom.wait_value('parley_calls_total{result="answered"}', 1)
        prom.wait_value('parley_bindings', 2)
        prom.wait_value('parley_store_flushes_total{result="ok"}', 1)
        # Every request with a transaction got a final response: all of them are in the
        # histogram, and its buckets are cumulative up to +Inf.
        n = prom.wait_value('parley_response_time_seconds_count', 8)
        inf = prom.query('parley_response_time_seconds_bucket{le="+Inf"}')
        assert len(inf) == 1 and inf[0][1] >= n
        q = prom.query('histogram_quantile(0.5, parley_response_time_seconds_bucket)')
        assert len(q) == 1 and q[0][1] >= 0
        prom.wait_value('parley_transactions_total{kind="server"}', 8)
        assert prom.query('parley_calls_active')[0][1] == 0
        for ua in (alice, bob):
            ua.close()
    finally:
        prom.stop()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make deps)")
def test_exposition_passes_promtool(metered):
    alice, = phones(metered, "alice")
    # A TCP connection, accepted and left open while the figures are read.
    conn = socket.create_connection(("127.0.0.1", metered.sip_tcp))
    wait_log(metered, "accepted on 127.0.0.1")
    st, headers, body = http("GET", metered.http + "/metrics")
    assert st == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    # Every family has its HELP and TYPE, and the figures are the ones just caused.
    for name in ("parley_requests_received_total", "parley_responses_sent_total", "parley_bindings",
                 "parley_response_time_seconds", "parley_auth_failures_total", "parley_store_queue_changes",
                 "parley_connections_accepted_total", "parley_dns_lookups_total", "parley_store_flushes_total", "parley_retransmissions_total", "parley_parse_errors_total"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
    assert 'parley_requests_received_total{method="REGISTER"} 2\n' in text
    assert 'parley_responses_sent_total{class="2xx",code="200"}' in text
    assert "parley_bindings 1\n" in text
    assert 'parley_connections_accepted_total{transport="tcp"} 1\n' in text
    assert 'parley_connections_open{transport="tcp"} 1\n' in text
    assert 'parley_connections_accepted_total{transport="tls"} 0\n' in text
    conn.close()
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    alice.close()


def test_health_404_405(metered):
    st, headers, body = http("GET", metered.http + "/health")
    assert st == 200 and headers["Content-Type"] == "application/json"
    h = json.loads(body)
    assert h["status"] == "ok" and isinstance(h["uptime_s"], int) and h["uptime_s"] >= 0
    st, _, body = http("HEAD", metered.http + "/metrics")
    assert st == 200 and body == b""
    assert http("GET", metered.http + "/nope")[0] == 404
    assert http("GET", metered.http + "/metrics/x")[0] == 404
    st, headers, _ = http("POST", metered.http + "/metrics", data=b"x=1")
    assert st == 405 and headers["Allow"] == "GET, HEAD"
    assert http("DELETE", metered.http + "/health")[0] == 405
    # The endpoint is still there after all that, and SIP is served as before.
    assert http("GET", metered.http + "/health")[0] == 200
    alice, = phones(metered, "alice")
    alice.close()


@pytest.mark.parametrize("bad", ["nonsense", "127.0.0.1", "127.0.0.1:99999", "example.com:8080",
                                 "::1:8080", "[::1]8080", "300.1.2.3:80"])
def test_bad_http_address_exits_2(tmp_path, bad):
    r = subprocess.run([BIN, "serve", "--listen", f"udp:127.0.0.1:{free_port()}", "--db",
                        str(tmp_path / "p.db"), "--http", bad], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert f"--http {bad}" in r.stderr


def test_http_port_in_use_exits_1(tmp_path, metered):
    taken = metered.http[len("http://"):]
    r = subprocess.run([BIN, "serve", "--listen", f"udp:127.0.0.1:{free_port()}", "--db",
                        str(tmp_path / "other.db"), "--http", taken], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert f"cannot listen for HTTP on {taken}" in r.stderr


def test_http_in_the_config_file(server_factory, tmp_path):
    port = free_port(tcp=True)
    cfg = tmp_path / "parley.conf"
    cfg.write_text(f"[http]\nlisten = 127.0.0.1:{port}\n")
    s = server_factory(extra=["--config", str(cfg)]).start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    assert http("GET", f"http://127.0.0.1:{port}/health")[0] == 200


def test_health_503_while_the_store_fails(metered):
    """Another process holds the database: the writes fail, /health says 503 and /metrics
    counts the failures; once it lets go, /health is 200 again."""
    alice, = phones(metered, "alice")
    con = sqlite3.connect(metered.db, timeout=5, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    try:
        assert alice.register(expires=600).status == 200  # a change to write
        assert wait_for(lambda: http("GET", metered.http + "/health")[0] == 503, 15), metered.read_log()[-2000:]
        st, _, body = http("GET", metered.http + "/health")
        assert json.loads(body)["status"] == "store failing"
        text = http("GET", metered.http + "/metrics")[2].decode()
        assert "parley_store_failing 1\n" in text
        assert 'parley_store_flushes_total{result="failed"} 0\n' not in text
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert wait_for(lambda: http("GET", metered.http + "/health")[0] == 200, 15), metered.read_log()[-2000:]
    assert "parley_store_failing 0\n" in http("GET", metered.http + "/metrics")[2].decode()
    alice.close()
