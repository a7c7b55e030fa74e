"""test_transport_attacks.py: hostile peers on the stream transports (issue 13 review): WebSocket
messages in thousands of fragments (close 1009), frames wslay's reader refuses (named in the
log), an upgrade with frames in the same write; TLS records byte by byte, ClientHellos cut off
by a reset, a WSS peer that never reads. Each attack is checked for the server's answer and for
the server still serving afterwards."""
import socket
import ssl
import struct

import pytest

from conftest import stream_server, wait_for, wait_log
from sipua import free_port_both
from test_tcp import closed_by_server
from test_ws import options_msg, server_answers_options
from wsua import CLOSE, PING, PONG, TEXT, WsConn, frame, upgrade_request


@pytest.fixture
def srv(server_factory):
    return stream_server(server_factory, "ws")


def fragments(msg, sizes):
    """msg as a text message in fragments of the given sizes (the last one takes the rest)."""
    out, at = [], 0
    for k, n in enumerate(sizes):
        out.append(frame(TEXT if k == 0 else 0, msg[at:at + n], fin=False))
        at += n
    out.append(frame(0, msg[at:]))
    return b"".join(out)


# ---- WebSocket -------------------------------------------------------------------------------

def test_ws_message_in_a_few_fragments_is_served(srv):
    """What a client that does fragment sends (a handful of frames, a ping among them) is
    one message like any other."""
    ws = WsConn(srv.addr)
    msg = options_msg()
    ws.s.sendall(fragments(msg, [20] * 10) + frame(PING, b"p"))
    # The pong may leave first: control frames go ahead of queued messages.
    got = sorted([ws.recv_frame(), ws.recv_frame()])
    assert got[0][0] == TEXT and got[0][1].startswith(b"SIP/2.0 200 "), got
    assert got[1] == (PONG, b"p"), got


def test_ws_message_in_thousands_of_fragments_is_refused(srv):
    """Each fragment costs wslay an allocation of its own (about 100 bytes for a 1-byte
    fragment sent in 7): 60,000 of them held 5.6 MB per connection, so that 500 connections
    from one address could pin gigabytes. A message in more fragments than any client sends
    gets close 1009 once the cap is passed, before the rest is stored."""
    ws = WsConn(srv.addr)
    msg = options_msg()
    ws.s.sendall(fragments(msg, [1] * 2000))
    op, payload = ws.recv_frame()
    assert op == CLOSE, (op, payload[:40])
    assert struct.unpack("!H", payload[:2])[0] == 1009, payload
    assert closed_by_server(ws.s)
    wait_log(srv, "WebSocket message in over 64 fragments: close 1009")
    server_answers_options(srv)


@pytest.mark.parametrize("bad", [
    pytest.param(frame(PING, b"p" * 126), id="ping-over-125-bytes"),
    pytest.param(frame(PING, b"p", fin=False), id="fragmented-ping"),
    pytest.param(bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 63) + b"mask", id="length-2^63"),
])
def test_ws_frame_level_protocol_error_is_named(srv, bad):
    """wslay closes these with an empty close frame (no code): the log says what happened,
    not "code 1005" (which means "no code given")."""
    ws = WsConn(srv.addr)
    ws.s.sendall(bad)
    op, _ = ws.recv_frame()
    assert op == CLOSE
    assert closed_by_server(ws.s)
    wait_log(srv, "WebSocket protocol error in a frame's header")
    assert "WebSocket closed with code 1005" not in srv.read_log()
    server_answers_options(srv)


def test_ws_upgrade_and_frames_in_one_segment(srv):
    """A client that does not wait for the 101: the upgrade, two messages and a ping in one
    write are all taken."""
    s = socket.create_connection(srv.addr)
    req, _ = upgrade_request(srv.host, srv.port)
    s.sendall(req + frame(TEXT, options_msg()) + frame(PING, b"p") + frame(TEXT, options_msg()))
    ws = WsConn(srv.addr, connect=False)
    ws.s.close()
    ws.s = s
    assert ws.read_head().startswith("HTTP/1.1 101 ")
    got = sorted(ws.recv_frame() for _ in range(3))
    assert [op for op, _ in got] == [TEXT, TEXT, PONG], got
    assert all(p.startswith(b"SIP/2.0 200 ") for op, p in got if op == TEXT)


# ---- TLS and WSS -----------------------------------------------------------------------------

@pytest.fixture
def tls_srv(server_factory):
    """A server with TLS and WSS listeners (the self-signed certificate)."""
    port, wss = free_port_both("127.0.0.1"), free_port_both("127.0.0.1")
    s = server_factory(port=port, extra=["--listen", f"tls:127.0.0.1:{port}", "--listen",
                                         f"wss:127.0.0.1:{wss}"]).start()
    s.wss = ("127.0.0.1", wss)
    return s


def no_check():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def tls_options(srv):
    s = no_check().wrap_socket(socket.create_connection(srv.addr))
    s.sendall(options_msg().replace(b"SIP/2.0/WSS", b"SIP/2.0/TLS"))
    s.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        assert d, data
        data += d
    s.close()
    return data


def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = no_check().wrap_bio(inc, out)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_tls_byte_by_byte(tls_srv):
    """Every byte of the handshake and of the request in a segment of its own."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = no_check().wrap_bio(inc, out)
    s = socket.create_connection(tls_srv.addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pump(wait):
        for b in out.read():
            s.sendall(bytes([b]))
        s.settimeout(wait)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    inc.write_eof()
                    return
                inc.write(d)
        except socket.timeout:
            pass

    for _ in range(100):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump(0.2)
    obj.write(options_msg().replace(b"SIP/2.0/WSS", b"SIP/2.0/TLS"))
    data = b""
    for _ in range(100):
        pump(0.2)
        try:
            data += obj.read(65536)
        except ssl.SSLWantReadError:
            pass
        if b"\r\n\r\n" in data:
            break
    assert data.startswith(b"SIP/2.0 200 "), data
    s.close()


def test_tls_client_hellos_then_reset(tls_srv):
    """ClientHellos followed by a reset or a close, to TLS and WSS, leave nothing behind:
    every connection is closed and counted, and the server serves."""
    hello = client_hello()
    for k in range(60):
        s = socket.create_connection(tls_srv.wss if k % 2 else tls_srv.addr)
        s.sendall(hello)
        if k % 3:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert wait_for(lambda: tls_srv.read_log().count(" closed: ") >= 60, 20), "not every connection closed"
    assert tls_options(tls_srv).startswith(b"SIP/2.0 200 ")


def test_wss_peer_that_does_not_read_is_closed(tls_srv):
    """A WSS client sends requests and never reads the answers: once half a megabyte waits,
    its connection is closed and the server serves others."""
    ws = WsConn(tls_srv.wss, tls=no_check())
    ws.s.settimeout(20)
    with pytest.raises(OSError):
        for _ in range(400):
            ws.s.sendall(b"".join(frame(TEXT, options_msg()) for _ in range(100)))
    wait_log(tls_srv, "closed: the peer does not read")
    assert tls_options(tls_srv).startswith(b"SIP/2.0 200 ")
