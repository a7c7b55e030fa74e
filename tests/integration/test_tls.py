"""test_tls.py: SIP over TLS (issue 13): Python ssl clients register and ask OPTIONS over
tls: listeners (IPv4, IPv6); the self-signed certificate made at first start and reused, its
fingerprint in the log; a given certificate served; bad files refused; TLS 1.1 refused;
stalled handshakes and half messages closed; calls bridging UDP and TLS; sips: only over
TLS; outbound TLS to a federation peer, verified; SIPp over TLS through stunnel."""
import hashlib
import os
import re
import socket
import ssl
import stat
import warnings

import pytest

from conftest import add_users, answer_and_caller_hangs_up, parley, register_ok, stream_server, wait_for, wait_log
from sipua import UA, Call, is_req, rand, ring
from sippctl import run_sipp, sipp_phone
from stunnel import Stunnel, make_ca, make_cert
from tcpua import TcpUA
from test_tcp import closed_by_server, read_until


def tls_server(server_factory, *extra, host="127.0.0.1", domains=("a.test",), name="parley"):
    """A server on UDP and TLS at one port number (its log at debug)."""
    return stream_server(server_factory, "tls", *extra, host=host, domains=domains, name=name)


def cert_of(server):
    """The self-signed certificate Parley keeps beside its database."""
    return server.db + "-tls.crt"


def client_ctx(cafile):
    """A client context that checks the server's certificate (chain and IP) against cafile."""
    return ssl.create_default_context(cafile=cafile)


def tls_conn(server, cafile=None):
    """A TLS connection to server, verifying its certificate (and its IP address)."""
    s = socket.create_connection(server.addr)
    return client_ctx(cafile or cert_of(server)).wrap_socket(s, server_hostname=server.host)


def options(sock):
    host, port = sock.getsockname()[:2]
    phost, pport = sock.getpeername()[:2]
    if ":" in host:
        host, phost = f"[{host}]", f"[{phost}]"
    msg = (f"OPTIONS sip:{phost}:{pport};transport=tls SIP/2.0\r\n"
           f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK{rand(10)};rport\r\n"
           f"From: <sip:probe@a.test>;tag={rand(6)}\r\nTo: <sip:a.test>\r\nCall-ID: {rand(12)}\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    sock.sendall(msg.encode())
    return read_until(sock, b"\r\n\r\n")


def logged_fingerprint(server):
    m = re.findall(r"SHA-256 fingerprint ([0-9A-F:]+)", server.read_log())
    assert m, server.read_log()
    return m[-1]


def served_fingerprint(server, cafile=None):
    c = tls_conn(server, cafile)
    der = c.getpeercert(binary_form=True)
    c.close()
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def tls_phone(server, user, password="pw", cafile=None):
    return register_ok(TcpUA(server.addr, user=user, domain=server.domains[0], password=password, host=server.host,
                             tls=client_ctx(cafile or cert_of(server))))


@pytest.fixture
def srv(server_factory):
    s = tls_server(server_factory)
    add_users(s, "alice", "bob")
    return s


# ---- listeners and certificates ---------------------------------------------------------

def test_register_and_options_over_tls(srv):
    c = tls_conn(srv)
    assert c.version() in ("TLSv1.2", "TLSv1.3")
    r = options(c)
    assert r.startswith("SIP/2.0 200"), r
    assert "Via: SIP/2.0/TLS " in r and f"rport={c.getsockname()[1]}" in r, r
    c.close()
    wait_log(srv, "TLS established (TLSv1.3, ")
    bob = tls_phone(srv, "bob")
    out = wait_for(lambda: (o := parley("reg", "list", db=srv.db).stdout) and "bob@a.test" in o and o, 5)
    line = next(ln for ln in out.splitlines() if "bob@a.test" in ln)
    assert " TLS" in line, out
    wait_log(srv, "registered bob@a.test from 127.0.0.1:")
    assert re.search(r"registered bob@a\.test from 127\.0\.0\.1:\d+ over TLS", srv.read_log())
    bob.close()
    wait_log(srv, "closed: closed by the peer")


def test_ipv6_tls_listener(server_factory):
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s6 = tls_server(server_factory, host="::1")
    c = tls_conn(s6)  # the self-signed certificate names ::1
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_self_signed_made_once_and_reused(server_factory):
    srv = tls_server(server_factory)
    crt, key = cert_of(srv), srv.db + "-tls.key"
    assert os.path.exists(crt) and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    wait_log(srv, "(self-signed, made now), SHA-256 fingerprint")
    fp = logged_fingerprint(srv)
    assert fp == served_fingerprint(srv)
    first = open(crt).read()
    assert srv.stop() == 0
    srv.start()
    wait_log(srv, "(self-signed, made earlier), SHA-256 fingerprint")
    assert open(crt).read() == first
    assert logged_fingerprint(srv) == fp == served_fingerprint(srv)


def test_given_certificate_served(server_factory, tmp_path):
    ca = make_ca(str(tmp_path))
    crt, key = make_cert(str(tmp_path), ca)
    srv = tls_server(server_factory, "--tls-cert", crt, "--tls-key", key)
    wait_log(srv, f"certificate {crt} (given)")
    assert served_fingerprint(srv, ca[0]) == logged_fingerprint(srv)
    assert not os.path.exists(cert_of(srv))  # nothing self-signed made
    c = tls_conn(srv, ca[0])
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_bad_certificate_files_exit_2(tmp_path):
    ca = make_ca(str(tmp_path))
    crt, key = make_cert(str(tmp_path), ca)
    other_crt, _ = make_cert(str(tmp_path), ca, name="other")
    db = str(tmp_path / "p.db")
    base = ["serve", "--listen", "tls:127.0.0.1:0", "--domain", "a.test"]
    cases = [
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", key], "--tls-cert " + str(tmp_path / "missing.crt")),
        (["--tls-cert", crt, "--tls-key", str(tmp_path / "missing.key")], "--tls-key " + str(tmp_path / "missing.key")),
        (["--tls-cert", key, "--tls-key", key], f"--tls-cert {key}: not a PEM certificate"),
        (["--tls-cert", other_crt, "--tls-key", key], f"--tls-key {key}: does not match"),
        (["--tls-cert", crt], "--tls-cert: needs --tls-key"),
        (["--tls-ca", str(tmp_path / "none.pem")], "--tls-ca " + str(tmp_path / "none.pem")),
    ]
    for flags, want in cases:
        r = parley(*base, *flags, db=db)
        assert r.returncode == 2 and want in r.stderr, (flags, r.returncode, r.stderr)
    r = parley("check", "--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", key, db=db)
    assert r.returncode == 2 and "missing.crt" in r.stderr, r.stderr
    # A good pair passes check and shows in its [tls] section.
    r = parley("check", "--tls-cert", crt, "--tls-key", key, db=db)
    assert r.returncode == 0 and f"tls-cert = {crt}" in r.stdout, r.stdout + r.stderr


def test_tls_1_1_refused(srv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python calls these versions deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    s = socket.create_connection(srv.addr)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        ctx.wrap_socket(s, server_hostname=srv.host)
    s.close()
    wait_log(srv, "TLS handshake failed: unsupported protocol")
    c = tls_conn(srv)
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_stalled_handshakes_are_closed(srv):
    """A client that connects and sends nothing, and one that stops in the middle of its
    ClientHello, are closed after the handshake timeout (10 s) while others are served."""
    silent = socket.create_connection(srv.addr)
    # Half of a real ClientHello, made with a memory BIO.
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    half = socket.create_connection(srv.addr)
    half.sendall(hello[:len(hello) // 2])
    c = tls_conn(srv)
    assert options(c).startswith("SIP/2.0 200")
    ua = UA(srv.addr)
    ua.send_raw(ua.build("OPTIONS", f"sip:{srv.host}:{srv.port}", contact=False))
    r = ua.final(5)
    assert r is not None and r.status == 200
    assert closed_by_server(silent, timeout=30) and closed_by_server(half, timeout=30)
    wait_log(srv, "closed: TLS handshake not done after 10 s")
    assert srv.read_log().count("closed: TLS handshake not done after 10 s") >= 2
    assert options(c).startswith("SIP/2.0 200")
    c.close()


def test_half_message_over_tls_closed_at_idle(server_factory):
    srv = tls_server(server_factory, "--tcp-idle-timeout", "2")
    half = tls_conn(srv)
    half.sendall(b"INVITE sip:bob@a.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKx\r\nContent-Le")
    other = tls_conn(srv)
    assert options(other).startswith("SIP/2.0 200")
    assert closed_by_server(half, timeout=30)
    wait_log(srv, "in the middle of a message")
    other.close()


def test_many_messages_in_one_burst(srv):
    """Several messages in one write land in TLS records of their own or shared: each is
    answered."""
    c = tls_conn(srv)
    host, port = c.getsockname()[:2]
    msgs = b""
    for i in range(200):
        msgs += (f"OPTIONS sip:{srv.host}:{srv.port};transport=tls SIP/2.0\r\n"
                 f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bKb{i};rport\r\n"
                 f"From: <sip:probe@a.test>;tag=t{i}\r\nTo: <sip:a.test>\r\nCall-ID: burst{i}\r\n"
                 f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    c.sendall(msgs)
    c.settimeout(10)
    data = b""
    while data.count(b"SIP/2.0 200") < 200 or not data.endswith(b"\r\n\r\n"):
        chunk = c.recv(65536)
        assert chunk, data.count(b"SIP/2.0 200")
        data += chunk
    # in order: the answers to one read are gathered into one TLS write
    ids = re.findall(rb"SIP/2\.0 200 [^\r]*\r\n(?:[^\r]+\r\n)*?Call-ID: (burst\d+)", data)
    assert ids == [f"burst{i}".encode() for i in range(200)], ids[:5]
    c.close()


def test_burst_then_bad_message_all_answered_before_close(srv):
    """200 OPTIONS and a message without Content-Length in one write: every answer arrives,
    in order, the 400 last, before the server closes (what was gathered goes first)."""
    c = tls_conn(srv)
    host, port = c.getsockname()[:2]
    msgs = b"".join(
        (f"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TLS {host}:{port};branch=z9hG4bKc{i};rport\r\n"
         f"From: <sip:probe@a.test>;tag=t{i}\r\nTo: <sip:a.test>\r\nCall-ID: close{i}\r\n"
         "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode() for i in range(200))
    c.sendall(msgs + b"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKnl;rport\r\n"
              b"From: <sip:x@a.test>;tag=1\r\nTo: <sip:a.test>\r\nCall-ID: nocl\r\nCSeq: 1 OPTIONS\r\n"
              b"Max-Forwards: 70\r\n\r\n")
    c.settimeout(20)
    data = b""
    try:
        while chunk := c.recv(65536):
            data += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass  # the server may end without a TLS close
    ids = re.findall(rb"SIP/2\.0 200 [^\r]*\r\n(?:[^\r]+\r\n)*?Call-ID: (close\d+)", data)
    assert ids == [f"close{i}".encode() for i in range(200)], (len(ids), data[-300:])
    assert b"SIP/2.0 400 Missing Content-Length" in data[data.index(b"Call-ID: close199"):], data[-300:]


# ---- calls -----------------------------------------------------------------------------------

@pytest.mark.parametrize("caller_tls", [False, True], ids=["udp_to_tls", "tls_to_udp"])
def test_call_bridges_udp_and_tls(srv, caller_tls):
    alice = tls_phone(srv, "alice") if caller_tls else srv.ua("alice", "pw")
    if not caller_tls:
        assert alice.register().status == 200
    bob = srv.ua("bob", "pw") if caller_tls else tls_phone(srv, "bob")
    if caller_tls:
        assert bob.register().status == 200
    c, inv = ring(alice, bob)
    assert inv.all("via")[0].startswith(f"SIP/2.0/{'UDP' if caller_tls else 'TLS'} "), inv.all("via")
    rr = ", ".join(inv.all("record-route"))
    tls_rr, udp_rr = f"<sip:{srv.host}:{srv.port};lr;transport=tls>", f"<sip:{srv.host}:{srv.port};lr>"
    assert rr == (f"{udp_rr}, {tls_rr}" if caller_tls else f"{tls_rr}, {udp_rr}"), rr
    answer_and_caller_hangs_up(srv, alice, bob, c, inv)
    if not caller_tls:  # bob's phone does not listen: reached over its own connection
        assert "bytes over TLS: INVITE sip:bob@" in srv.read_log()


def test_sips_needs_a_phone_on_tls(srv):
    """A sips: call reaches only phones registered over TLS; with none, 480."""
    alice = srv.ua("alice", "pw")
    assert alice.register().status == 200
    bob_udp = srv.ua("bob", "pw")
    assert bob_udp.register().status == 200
    c = Call(alice, "sips:bob@a.test")
    assert c.start() is None
    r = c.final()
    assert r is not None and r.status == 480 and r.reason == "Not Reachable Over TLS", r
    c.ack_non2xx(r)
    wait_log(srv, "480 Not Reachable Over TLS")
    assert bob_udp.recv(1, is_req("INVITE")) is None
    bob_tls = tls_phone(srv, "bob")
    c, inv = ring(alice, bob_tls, target="sips:bob@a.test")
    assert inv.all("via")[0].startswith("SIP/2.0/TLS ")
    assert bob_udp.recv(1, is_req("INVITE")) is None  # the UDP phone is not forked to
    bob_tls.reply(inv, 486, "Busy Here", to_tag=rand(6))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)


def test_federation_peer_over_tls_verified(server_factory):
    """A forwards calls for b.test to its peer B over TLS, checking B's certificate against
    --tls-ca; without the right CA it refuses B's certificate and the call fails at once."""
    b = tls_server(server_factory, domains=("b.test",), name="b")
    b.user_add("bob@b.test", "pw")
    bob = b.ua("bob", "pw", domain="b.test")
    assert bob.register().status == 200
    peer = f"b.test=sip:127.0.0.1:{b.port};transport=tls"
    a = tls_server(server_factory, "--peer", peer, "--tls-ca", cert_of(b), name="a")
    a.user_add("alice@a.test", "pw")
    alice = a.ua("alice", "pw")
    assert alice.register().status == 200
    c, inv = ring(alice, bob, target="sip:bob@b.test")
    assert "bytes over TLS: INVITE sip:bob@b.test" in b.read_log()
    wait_log(a, "TLS established")
    assert re.search(r"connection \w+ to 127\.0\.0\.1:\d+: TLS established", a.read_log())
    bob.reply(inv, 486, "Busy Here", to_tag=rand(6))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)
    # The same peer, trusted against the wrong CA (the system's): no call goes through.
    a2 = tls_server(server_factory, "--peer", peer, name="a2")
    a2.user_add("alice@a.test", "pw")
    alice2 = a2.ua("alice", "pw")
    assert alice2.register().status == 200
    c = Call(alice2, "sip:bob@b.test")
    assert c.start() is None
    r = c.final(timeout=10)
    assert r is not None and r.status >= 500, r
    wait_log(a2, "certificate not accepted")
    assert bob.recv(1, is_req("INVITE")) is None


# ---- SIPp over TLS (stunnel) ------------------------------------------------------------------

# SIPp writes the address it sends to (here stunnel's) as the digest uri unless told
# otherwise (-auth_uri): Parley wants the Request-URI there.

def test_sipp_registrations_over_tls(srv, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("".join(f"u{i:03d}@a.test,pw{i:03d}\n" for i in range(50)))
    assert parley("user", "import", str(users), db=srv.db).returncode == 0
    with Stunnel(str(tmp_path), srv.addr, cert_of(srv)) as tunnel:
        stats = run_sipp("reg_auth.xml", f"127.0.0.1:{tunnel.port}", tmp_path,
                         "SEQUENTIAL\n" + "".join(f"u{i:03d};pw{i:03d};5090;a.test\n" for i in range(50)),
                         calls=50, rate=25, limit=10, timeout=120, extra=["-t", "t1", "-auth_uri", "a.test"])
    assert int(stats["SuccessfulCall(C)"]) == 50 and int(stats["FailedCall(C)"]) == 0
    out = wait_for(lambda: (o := parley("reg", "list", db=srv.db).stdout).count(" TLS") >= 50 and o, 10)
    assert out, parley("reg", "list", db=srv.db).stdout


def test_sipp_calls_over_tls(srv, tmp_path):
    """SIPp calls over TLS (through stunnel) to a SIPp phone on UDP."""
    with Stunnel(str(tmp_path), srv.addr, cert_of(srv)) as tunnel:
        with sipp_phone(srv, "bob", "pw", calls=5):
            stats = run_sipp("call_uac.xml", f"127.0.0.1:{tunnel.port}", tmp_path,
                             "SEQUENTIAL\nalice;pw;bob;a.test\n", calls=5,
                             extra=["-t", "t1", "-auth_uri", "bob@a.test"])
            assert int(stats["SuccessfulCall(C)"]) == 5
    wait_log(srv, "call: ended alice@a.test -> bob@a.test")
    assert "bytes over TLS: INVITE sip:bob@a.test" in srv.read_log()


def test_sips_to_a_peer_goes_over_tls(server_factory):
    """A sips: call for another domain goes to its peer over TLS even when the peer's URI
    names no transport (RFC 3263: sips means TLS)."""
    b = tls_server(server_factory, domains=("b.test",), name="b")
    b.user_add("bob@b.test", "pw")
    bob = tls_phone(b, "bob")
    a = tls_server(server_factory, "--peer", f"b.test=sip:127.0.0.1:{b.port}", "--tls-ca", cert_of(b), name="a")
    a.user_add("alice@a.test", "pw")
    alice = a.ua("alice", "pw")
    assert alice.register().status == 200
    c, inv = ring(alice, bob, target="sips:bob@b.test")
    assert "bytes over TLS: INVITE sips:bob@b.test" in b.read_log()
    bob.reply(inv, 486, "Busy Here", to_tag=rand(6))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)
