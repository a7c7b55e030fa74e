"""test_tcp.py: SIP over TCP (issue 13): registrations and calls over connections, calls
bridging UDP and TCP, SIPp over TCP (-t t1 and -t tn), and bad input on streams (half a
message, 10 MB without a line end, no Content-Length, thousands of connections)."""
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import BIN, add_users, answer_and_caller_hangs_up, parley, register_ok, registered, stream_server, wait_for, wait_log
from sippctl import run_sipp, sipp_phone
from sipua import SDP, UA, callee_hangs_up, is_req, rand, ring
from tcpua import TcpUA


def tcp_server(server_factory, *extra, host="127.0.0.1"):
    return stream_server(server_factory, "tcp", *extra, host=host)


@pytest.fixture
def srv(server_factory):
    s = tcp_server(server_factory)
    add_users(s, "alice", "bob", "carol")
    return s


def tcp_phone(server, user, password="pw"):
    return register_ok(TcpUA(server.addr, user=user, domain=server.domains[0], password=password, host=server.host))


udp_phone = registered


def options(sock):
    """Sends an OPTIONS to the server over a connected TCP socket; returns the response text."""
    host, port = sock.getsockname()[:2]
    phost, pport = sock.getpeername()[:2]
    if ":" in host:
        host, phost = f"[{host}]", f"[{phost}]"
    branch = "z9hG4bK" + rand(10)
    msg = (f"OPTIONS sip:{phost}:{pport} SIP/2.0\r\n"
           f"Via: SIP/2.0/TCP {host}:{port};branch={branch};rport\r\n"
           f"From: <sip:probe@a.test>;tag={rand(6)}\r\nTo: <sip:a.test>\r\nCall-ID: {rand(12)}\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    sock.sendall(msg.encode())
    return read_until(sock, b"\r\n\r\n")


def read_until(sock, marker, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def closed_by_server(sock, timeout=10.0):
    """Reads (and drops) until the server closes; True when it did (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


# ---- basics ------------------------------------------------------------------------------

def test_options_and_keepalive_over_tcp(srv):
    s = socket.create_connection(srv.addr)
    s.sendall(b"\r\n\r\n")
    s.settimeout(5)
    assert s.recv(2) == b"\r\n"  # RFC 5626 §4.4.1 pong
    r = options(s)
    assert r.startswith("SIP/2.0 200"), r
    # rport filled in with the connection's port, and received even though it equals the
    # sent-by host (RFC 3581 §4).
    assert f"rport={s.getsockname()[1]}" in r and "received=127.0.0.1" in r, r
    s.close()
    wait_log(srv, "tcp: connection")
    wait_log(srv, "closed: closed by the peer")


def test_rate_limit_is_for_datagrams(server_factory):
    """The per-source rate limit drops datagrams; over TCP nothing would resend a dropped
    message, so a connection is not limited by it (it has connection caps instead)."""
    srv = tcp_server(server_factory, "--rate-limit", "5")
    s = socket.create_connection(srv.addr)
    answers = [options(s) for _ in range(30)]
    assert all(a.startswith("SIP/2.0 200") for a in answers)
    s.close()


def test_ipv6_tcp_listener(server_factory):
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s6 = tcp_server(server_factory, host="::1")
    c = socket.create_connection(("::1", s6.port))
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_register_over_tcp_shows_transport(srv):
    bob = tcp_phone(srv, "bob")
    out = wait_for(lambda: "bob@a.test" in parley("reg", "list", db=srv.db).stdout and
                   parley("reg", "list", db=srv.db).stdout, 5)
    line = next(ln for ln in out.splitlines() if "bob@a.test" in ln)
    assert "TCP" in line, out
    bob.close()


def test_call_tcp_to_tcp(srv):
    alice, bob = tcp_phone(srv, "alice"), tcp_phone(srv, "bob")
    c, inv = ring(alice, bob)
    vias = inv.all("via")
    assert vias[0].startswith(f"SIP/2.0/TCP {srv.host}:{srv.port};"), vias
    assert inv.all("record-route") == [f"<sip:{srv.host}:{srv.port};lr;transport=tcp>"]
    answer_and_caller_hangs_up(srv, alice, bob, c, inv)


@pytest.mark.parametrize("caller_tcp", [False, True], ids=["udp_to_tcp", "tcp_to_udp"])
def test_call_bridges_udp_and_tcp(srv, caller_tcp):
    alice = tcp_phone(srv, "alice") if caller_tcp else udp_phone(srv, "alice")
    bob = udp_phone(srv, "bob") if caller_tcp else tcp_phone(srv, "bob")
    c, inv = ring(alice, bob)
    out_proto = "UDP" if caller_tcp else "TCP"
    assert inv.all("via")[0].startswith(f"SIP/2.0/{out_proto} "), inv.all("via")
    # Two Record-Route entries: each side reaches us over its own transport (RFC 3261 §16.6).
    rr = ", ".join(inv.all("record-route"))
    tcp_rr, udp_rr = f"<sip:{srv.host}:{srv.port};lr;transport=tcp>", f"<sip:{srv.host}:{srv.port};lr>"
    assert rr == (f"{udp_rr}, {tcp_rr}" if caller_tcp else f"{tcp_rr}, {udp_rr}"), rr
    tag = rand(8)
    bob.reply(inv, 200, "OK", to_tag=tag, headers=[f"Contact: <sip:bob@{bob.hostport}>", "Content-Type: application/sdp"],
              body=SDP)
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    # The callee hangs up: its BYE follows the route set the other way round.
    bye, r = callee_hangs_up(alice, bob, inv, tag, transport="UDP" if caller_tcp else "TCP")
    assert bye is not None
    assert r is not None and r.status == 200
    wait_log(srv, "call: ended alice@a.test -> bob@a.test")


def test_binding_whose_connection_closed_fails_at_once(srv):
    """A phone registered over TCP is reached only over its connection; once that is gone a
    call to it fails at once instead of waiting for timer B (32 s)."""
    gone_phone_gets_480(srv, tcp_phone(srv, "bob"))


def gone_phone_gets_480(srv, bob):
    """bob's phone (registered over a stream) closes its connection: a call from a UDP phone
    to bob gets 480 at once."""
    bob.sock.close()
    wait_log(srv, "closed: closed by the peer")
    alice = udp_phone(srv, "alice")
    from sipua import Call
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    r = c.final(timeout=8)
    assert r is not None and r.status == 480, r


def test_registered_connection_outlives_the_idle_timeout(server_factory):
    """A connection a phone registered over stays open while its binding lasts, however
    quiet; one nobody registered over is closed at the idle timeout."""
    srv = tcp_server(server_factory, "--tcp-idle-timeout", "1")
    add_users(srv, "alice", "bob")
    bob = tcp_phone(srv, "bob")
    bare = socket.create_connection(srv.addr)
    assert closed_by_server(bare, timeout=30)  # idle for a second: closed
    wait_log(srv, "closed: idle for 1 s")
    # bob's connection was as idle as the bare one, for longer: still there.
    alice = udp_phone(srv, "alice")
    c, inv = ring(alice, bob)
    assert inv is not None and inv.all("via")[0].startswith("SIP/2.0/TCP ")
    bob.reply(inv, 486, "Busy Here", to_tag=rand(6))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)


def test_refused_connect_fails_the_branch_at_once(srv):
    """A phone registered over TCP whose Contact names a port it says it listens on is
    reached with a new connection; when that connect is refused, the branch fails as a
    503 at once rather than at timer B (and a proxy passes a 503 on as 500, §16.7)."""
    # A bound socket that does not listen: connects to its port are refused, and nothing
    # else (this test's own connections, another test) can take the port meanwhile.
    hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hold.bind(("127.0.0.1", 0))
    dead = hold.getsockname()[1]
    reg = TcpUA(srv.addr, user="bob", domain="a.test", password="pw", rport=False)
    r = reg.register(contact=f"<sip:bob@127.0.0.1:{dead};transport=tcp>")
    assert r is not None and r.status == 200, r
    alice = udp_phone(srv, "alice")
    from sipua import Call
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    r = c.final(timeout=8)
    assert r is not None and r.status == 500, r
    wait_log(srv, "connect failed: Connection refused")
    wait_log(srv, "unreachable (Connection refused): 1 request ended")
    reg.close()
    hold.close()


def test_binding_over_tcp_after_restart(server_factory):
    """A binding made over a connection has none after a restart (RFC 5626: a flow-bound
    binding without its flow is unusable): it is still listed, and a call to it fails at
    once (480) until the phone registers again."""
    srv = tcp_server(server_factory)
    add_users(srv, "alice", "bob")
    bob = tcp_phone(srv, "bob")
    assert srv.stop() == 0
    bob.close()
    srv.start()
    assert "bob@a.test" in parley("reg", "list", db=srv.db).stdout
    alice = udp_phone(srv, "alice")
    from sipua import Call
    c = Call(alice, "sip:bob@a.test")
    assert c.start() is None
    r = c.final(timeout=8)
    assert r is not None and r.status == 480, r
    bob = tcp_phone(srv, "bob")
    c, inv = ring(alice, bob)
    assert inv is not None
    bob.close()


def test_zero_config_listens_on_udp_and_tcp_5060(tmp_path):
    """`parley serve` with no --listen answers on UDP and TCP port 5060 (DESIGN §1); run in
    a network namespace of its own so that port 5060 is free."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.join(here, "zeroconf_run.py"), BIN,
                        str(tmp_path)], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert "udp ok" in out and "tcp ok" in out and "exit 0" in out, out + open(tmp_path / "zeroconf.log").read()


# ---- bad input on streams -----------------------------------------------------------------

def test_half_message_closed_at_idle_timeout(server_factory):
    srv = tcp_server(server_factory, "--tcp-idle-timeout", "2")
    half = socket.create_connection(srv.addr)
    half.sendall(b"INVITE sip:bob@a.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\nContent-Le")
    # Meanwhile the server serves others, over UDP and TCP.
    ua = UA(srv.addr)
    ua.send_raw(ua.build("OPTIONS", f"sip:{srv.host}:{srv.port}", contact=False))
    r = ua.final(5)
    assert r is not None and r.status == 200
    other = socket.create_connection(srv.addr)
    assert options(other).startswith("SIP/2.0 200")
    assert closed_by_server(half, timeout=30)
    wait_log(srv, "in the middle of a message")
    other.close()


def test_10mb_without_line_end_is_cut_off(server_factory):
    srv = tcp_server(server_factory)
    before = rss_kb(srv.proc.pid)
    s = socket.create_connection(srv.addr)
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < 10 * 1024 * 1024:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(s, timeout=15)
    wait_log(srv, "message over 65535 bytes")
    after = rss_kb(srv.proc.pid)
    assert after - before < 50 * 1024, (before, after)
    c = socket.create_connection(srv.addr)
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_no_content_length_gets_400_and_close(srv):
    s = socket.create_connection(srv.addr)
    s.sendall(b"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKnocl;rport\r\n"
              b"From: <sip:x@a.test>;tag=1\r\nTo: <sip:a.test>\r\nCall-ID: nocl\r\nCSeq: 1 OPTIONS\r\n"
              b"Max-Forwards: 70\r\n\r\n")
    r = read_until(s, b"\r\n\r\n")
    assert r.startswith("SIP/2.0 400 Missing Content-Length"), r
    assert closed_by_server(s)
    wait_log(srv, "message without Content-Length")


def pipelined(sock, n, via="TCP"):
    """n OPTIONS, Call-IDs pipe0..pipe{n-1}, as one byte string for one write on sock."""
    host, port = sock.getsockname()[:2]
    return b"".join(
        (f"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/{via} {host}:{port};branch=z9hG4bKp{i};rport\r\n"
         f"From: <sip:probe@a.test>;tag=t{i}\r\nTo: <sip:a.test>\r\nCall-ID: pipe{i}\r\n"
         "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode() for i in range(n))


def answered_in_order(data, n):
    """The Call-IDs of the 200s in data are pipe0..pipe{n-1}, in that order."""
    ids = re.findall(r"SIP/2\.0 200 [^\r]*\r\n(?:[^\r]+\r\n)*?Call-ID: (pipe\d+)", data)
    return ids == [f"pipe{i}" for i in range(n)]


def traced(pid, out):
    """strace on pid, writing its send calls to out; returns once it is attached."""
    st = subprocess.Popen(["strace", "-f", "-qq", "-s", "16", "-e", "trace=sendto,sendmsg,write", "-o", out,
                           "-p", str(pid)], stderr=subprocess.DEVNULL)
    wait_for(lambda: re.search(r"TracerPid:\s+[1-9]", open(f"/proc/{pid}/status").read()), 10)
    return st


def test_pipelined_requests_answered_in_order_in_few_sends(srv, tmp_path):
    """200 OPTIONS in one write: all answered, in order, and the answers to one read leave
    together (a handful of sends, not one per answer)."""
    s = socket.create_connection(srv.addr)
    st = traced(srv.proc.pid, str(tmp_path / "strace.txt"))
    try:
        s.sendall(pipelined(s, 200))
        s.settimeout(20)
        data = b""
        while b"Call-ID: pipe199\r\n" not in data or not data.endswith(b"\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, data[-400:]
            data += chunk
        data = data.decode()
    finally:
        st.terminate()
        st.wait()
    assert answered_in_order(data, 200), data[-400:]
    sends = re.findall(r'^\d+\s+(?:sendto|sendmsg|write)\(\d+, (?:\[\{iov_base=)?"SIP/2\.0 ',
                       (tmp_path / "strace.txt").read_text(), re.M)
    assert 0 < len(sends) <= 40, len(sends)
    s.close()


def test_requests_forwarded_from_one_read_leave_together(srv, tmp_path):
    """30 MESSAGEs for a phone on TCP in one write from another connection: the phone gets
    them all, in order, in a handful of sends on its connection (gathered per next hop)."""
    bob = tcp_phone(srv, "bob")
    s = socket.create_connection(srv.addr)
    host, port = s.getsockname()[:2]
    msgs = b"".join(
        (f"MESSAGE sip:bob@a.test SIP/2.0\r\nVia: SIP/2.0/TCP {host}:{port};branch=z9hG4bKm{i};rport\r\n"
         f"From: <sip:x@elsewhere.test>;tag=m{i}\r\nTo: <sip:bob@a.test>\r\nCall-ID: msg{i}\r\n"
         f"CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n"
         f"Content-Length: 2\r\n\r\nm{i % 10}").encode() for i in range(30))
    st = traced(srv.proc.pid, str(tmp_path / "strace.txt"))
    try:
        s.sendall(msgs)
        got = []
        while len(got) < 30:
            m = bob.recv(timeout=10, want=is_req("MESSAGE"))
            assert m is not None, got
            got.append(m.get("Call-ID"))
    finally:
        st.terminate()
        st.wait()
    assert got == [f"msg{i}" for i in range(30)], got
    sends = re.findall(r'^\d+\s+(?:sendto|sendmsg|write)\(\d+, (?:\[\{iov_base=)?"MESSAGE ',
                       (tmp_path / "strace.txt").read_text(), re.M)
    assert 0 < len(sends) <= 10, len(sends)
    s.close()
    bob.close()


def test_pipelined_requests_then_bad_message_all_answered_before_close(srv):
    """200 OPTIONS and a message without Content-Length in one write: the 200 answers and
    the 400 all arrive, in order, before the server closes."""
    s = socket.create_connection(srv.addr)
    s.sendall(pipelined(s, 200) + b"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKnl;"
              b"rport\r\nFrom: <sip:x@a.test>;tag=1\r\nTo: <sip:a.test>\r\nCall-ID: nocl\r\nCSeq: 1 OPTIONS\r\n"
              b"Max-Forwards: 70\r\n\r\n")
    s.settimeout(20)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    text = data.decode()
    assert answered_in_order(text, 200), text[-400:]
    assert "SIP/2.0 400 Missing Content-Length" in text[text.index("Call-ID: pipe199"):], text[-400:]


def test_oversized_content_length_gets_513_and_close(srv):
    s = socket.create_connection(srv.addr)
    s.sendall(b"MESSAGE sip:bob@a.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKbig;rport\r\n"
              b"From: <sip:x@a.test>;tag=1\r\nTo: <sip:bob@a.test>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\n"
              b"Max-Forwards: 70\r\nContent-Length: 10000000\r\n\r\nabc")
    r = read_until(s, b"\r\n\r\n")
    assert r.startswith("SIP/2.0 513"), r
    assert closed_by_server(s)


def test_connection_caps(server_factory):
    """2,000 connections at once: the cap refuses the excess with a log line, and the server
    still answers over UDP and over a fresh connection once they are gone."""
    srv = tcp_server(server_factory, "--tcp-max-connections", "500", "--tcp-max-per-source", "2000")
    socks = []
    for _ in range(2000):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(srv.addr)
        except BlockingIOError:
            pass
        socks.append(s)
    wait_log(srv, "refused: 500 connections open, the limit (tcp-max-connections)", timeout=20)
    ua = UA(srv.addr)
    ua.send_raw(ua.build("OPTIONS", f"sip:{srv.host}:{srv.port}", contact=False))
    r = ua.final(5)
    assert r is not None and r.status == 200
    for s in socks:
        s.close()
    c = None
    for _ in range(50):  # the server notices the closes as it gets to them
        c = socket.create_connection(srv.addr)
        try:
            if options(c).startswith("SIP/2.0 200"):
                break
        except (ConnectionResetError, socket.timeout):
            pass
        c.close()
        time.sleep(0.2)
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_per_source_cap(server_factory):
    srv = tcp_server(server_factory, "--tcp-max-per-source", "20")
    socks = [socket.create_connection(srv.addr) for _ in range(30)]
    wait_log(srv, "connections from this address, the limit (tcp-max-per-source)")
    # A refused connection is closed at once.
    assert sum(closed_by_server(s, timeout=0.5) for s in socks[20:]) >= 1
    for s in socks:
        s.close()


# ---- SIPp over TCP ----------------------------------------------------------------------

def sipp_tcp(mode):
    """SIPp's flags for TCP mode t1 (one connection) or tn (one per call); with tn SIPp
    refuses to start unless its socket cap is under the open-file limit."""
    return ["-t", mode] + (["-max_socket", "1000"] if mode == "tn" else [])


@pytest.mark.parametrize("mode", ["t1", "tn"])
def test_sipp_registrations_over_tcp(srv, tmp_path, mode):
    users = tmp_path / "users.csv"
    users.write_text("".join(f"u{i:03d}@a.test,pw{i:03d}\n" for i in range(100)))
    assert parley("user", "import", str(users), db=srv.db).returncode == 0
    stats = run_sipp("reg_auth.xml", f"127.0.0.1:{srv.port}", tmp_path,
                     "SEQUENTIAL\n" + "".join(f"u{i:03d};pw{i:03d};5090;a.test\n" for i in range(100)),
                     calls=100, rate=50, limit=10, timeout=120, extra=sipp_tcp(mode))
    assert int(stats["SuccessfulCall(C)"]) == 100
    assert int(stats["FailedCall(C)"]) == 0
    out = wait_for(lambda: (o := parley("reg", "list", db=srv.db).stdout).count("a.test") >= 100 and o, 10)
    assert out and out.count(" TCP") >= 100, out


@pytest.mark.parametrize("mode", ["t1", "tn"])
def test_sipp_calls_over_tcp(srv, tmp_path, mode):
    with sipp_phone(srv, "bob", "pw", calls=5, extra=sipp_tcp(mode), tcp=True):
        stats = run_sipp("call_uac.xml", f"127.0.0.1:{srv.port}", tmp_path,
                         "SEQUENTIAL\nalice;pw;bob;a.test\n", calls=5, extra=sipp_tcp(mode))
        assert int(stats["SuccessfulCall(C)"]) == 5
    wait_log(srv, "call: ended alice@a.test -> bob@a.test")
