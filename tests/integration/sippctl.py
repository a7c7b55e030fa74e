"""sippctl.py: runs SIPp for the integration tests: a client scenario that makes a number of
calls (or registrations) against a server, and an answering SIPp phone registered there."""
import contextlib
import os
import subprocess

from sipua import free_port

SCENARIOS = os.path.join(os.path.dirname(__file__), "scenarios")
LIMITS = ["-nostdin", "-timeout", "60s", "-timeout_error"]


def run_sipp(scenario, target, tmp_path, inf, calls, rate=5, limit=5, timeout=90, extra=()):
    """Runs SIPp's client scenario against target ("host:port") with the CSV text inf (and
    SIPp flags extra, say ["-t", "t1"]), asserts it exits 0 and returns its last statistics
    row as a dict."""
    inf_path, stat = tmp_path / "sipp-inf.csv", tmp_path / "sipp-stat.csv"
    inf_path.write_text(inf)
    extra = list(extra)
    # Over TCP SIPp binds its -p port for TCP: it must be free for TCP.
    tcp = "-t" in extra and extra[extra.index("-t") + 1].startswith("t")
    r = subprocess.run(["sipp", target, "-sf", os.path.join(SCENARIOS, scenario), "-inf", str(inf_path),
                        "-m", str(calls), "-r", str(rate), "-l", str(limit), "-i", "127.0.0.1",
                        "-p", str(free_port(tcp=tcp)), "-trace_stat", "-stf", str(stat)] + LIMITS + extra,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = stat.read_text().splitlines()
    return dict(zip(rows[0].split(";"), rows[-1].split(";")))


@contextlib.contextmanager
def sipp_phone(server, user, password, calls, scenario="call_uas.xml", extra=(), tcp=False):
    """A SIPp phone answering `calls` calls for user, registered at server from its own port
    (tcp: registered over TCP with a Contact naming SIPp's TCP port, where the server
    connects to it; pass ["-t", "t1"] or so in extra); asserts on leaving that it exited 0."""
    port = free_port(server.host, tcp=tcp)
    if tcp:
        from tcpua import TcpUA
        reg = TcpUA(server.addr, user=user, domain=server.domains[0], password=password, host=server.host,
                    rport=False)
        r = reg.register(contact=f"<sip:{user}@{server.host}:{port};transport=tcp>")
    else:
        # The binding is reached at its source address, so register from SIPp's own port.
        reg = server.ua(user, password, port=port)
        r = reg.register()
    reg.close()
    assert r is not None and r.status == 200, r
    uas = subprocess.Popen(["sipp", "-sf", os.path.join(SCENARIOS, scenario), "-i", server.host,
                            "-p", str(port), "-m", str(calls)] + LIMITS + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield uas
        out, err = uas.communicate(timeout=30)
        assert uas.returncode == 0, out[-2000:] + err[-2000:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
