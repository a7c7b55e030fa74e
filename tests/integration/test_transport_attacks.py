"""test_transport_attacks.py: hostile peers on the stream transports (issue 13 review): WebSocket
messages split into very many fragments. Each attack is checked for the server's answer (a
close with the right code, a log line) and for the server still serving afterwards."""
import socket
import struct

import pytest

from conftest import wait_log
from sipua import UA, free_port_both, rand
from wsua import CLOSE, PING, PONG, TEXT, WsConn, frame


def options_msg():
    return (f"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/WSS {rand(8)}.invalid;branch=z9hG4bK{rand(10)}\r\n"
            f"From: <sip:probe@a.test>;tag={rand(6)}\r\nTo: <sip:a.test>\r\nCall-ID: {rand(12)}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


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


def still_serving(srv):
    """OPTIONS over a new WebSocket and over UDP get 200."""
    ws = WsConn(srv.addr, srv.host)
    ws.send(TEXT, options_msg())
    assert ws.recv_msg().startswith(b"SIP/2.0 200 "), "no 200 over a new WebSocket"
    ws.close()
    ua = UA(srv.addr, host=srv.host)
    ua.send_raw(ua.build("OPTIONS", f"sip:{srv.host}:{srv.port}", contact=False))
    r = ua.final(5)
    assert r is not None and r.status == 200


@pytest.fixture
def srv(server_factory):
    port = free_port_both("127.0.0.1")
    return server_factory(port=port, extra=["--listen", f"ws:127.0.0.1:{port}"]).start()


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
    still_serving(srv)


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
    still_serving(srv)
