"""test_ws.py: SIP over WebSocket (RFC 7118, issue 13): the upgrade, REGISTER and OPTIONS over
ws:, calls between a WebSocket phone and a UDP phone both ways, and bad input (an upgrade
without sip, a plain GET, an oversized request, a message over the size limit, half a frame,
an unmasked frame); ping gets pong. The client is wsua.py's, on a raw socket."""
import re
import socket
import ssl
import struct

import pytest

from conftest import add_users, answer_and_caller_hangs_up, parley, register_ok, registered, stream_server, wait_log
from sipua import SDP, UA, callee_hangs_up, is_req, rand, ring, uri_of, wait_for
from test_tcp import closed_by_server, gone_phone_gets_480
from wsua import BINARY, CLOSE, PING, PONG, TEXT, WsConn, WsUA, frame


def ws_server(server_factory, *extra, host="127.0.0.1"):
    return stream_server(server_factory, "ws", *extra, host=host)


@pytest.fixture
def srv(server_factory):
    s = ws_server(server_factory)
    add_users(s, "alice", "bob")
    return s


def ws_phone(server, user, password="pw"):
    return register_ok(WsUA(server.addr, user=user, domain=server.domains[0], password=password, host=server.host))


udp_phone = registered


def options_msg(host="df7jal23ls0d.invalid"):
    return (f"OPTIONS sip:a.test SIP/2.0\r\nVia: SIP/2.0/WSS {host};branch=z9hG4bK{rand(10)}\r\n"
            f"From: <sip:probe@a.test>;tag={rand(6)}\r\nTo: <sip:a.test>\r\nCall-ID: {rand(12)}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def server_answers_options(srv):
    """The server still works: OPTIONS over a new WebSocket and over UDP get 200."""
    ws = WsConn(srv.addr, srv.host)
    ws.send(TEXT, options_msg())
    assert ws.recv_msg().startswith(b"SIP/2.0 200 "), "no 200 over a new WebSocket"
    ws.close()
    ua = UA(srv.addr, host=srv.host)
    ua.send_raw(ua.build("OPTIONS", f"sip:{srv.host}:{srv.port}", contact=False))
    r = ua.final(5)
    assert r is not None and r.status == 200


# ---- basics ---------------------------------------------------------------------------

def test_options_over_ws_text_and_binary(srv):
    ws = WsConn(srv.addr)
    ws.send(TEXT, options_msg())
    r = ws.recv_msg()
    assert r.startswith(b"SIP/2.0 200 "), r
    # The response went back over the connection, with the browser's Via as it was.
    assert b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;" in r, r
    # A binary frame carries a SIP message too (RFC 7118 §5), and the answer is text.
    ws.send(BINARY, options_msg())
    op, payload = ws.recv_frame()
    assert op == TEXT and payload.startswith(b"SIP/2.0 200 "), (op, payload)
    wait_log(srv, "WebSocket upgrade from 127.0.0.1:")


def test_message_without_content_length(srv):
    """A WebSocket message is the whole SIP message: Content-Length may be left out (RFC 7118
    §5), and a body is what follows the headers."""
    ws = WsConn(srv.addr)
    ws.send(TEXT, options_msg().replace(b"Content-Length: 0\r\n", b""))
    assert ws.recv_msg().startswith(b"SIP/2.0 200 ")


def test_fragmented_message_and_ping(srv):
    ws = WsConn(srv.addr)
    msg = options_msg()
    # Three fragments with a ping between them: control frames may come in the middle.
    ws.s.sendall(frame(TEXT, msg[:40], fin=False) + frame(0, msg[40:90], fin=False) + frame(PING, b"hi") +
                 frame(0, msg[90:]))
    op, payload = ws.recv_frame()
    assert (op, payload) == (PONG, b"hi")
    assert ws.recv_msg().startswith(b"SIP/2.0 200 ")


def test_register_over_ws(srv):
    alice = ws_phone(srv, "alice")
    # The store is written behind: wait for the row.
    out = wait_for(lambda: "alice@a.test" in (o := parley("reg", "list", db=srv.db).stdout) and o, 5)
    # The binding says WS, keeps the browser's Contact, and is reached over its connection.
    assert re.search(r"alice@a\.test\s+sip:alice@\S+\.invalid;transport=ws.*\bWS\b", out), out
    r = alice.request("OPTIONS", "sip:a.test", auth=False, contact=False)
    assert r is not None and r.status == 200


def test_ipv6_ws_listener(server_factory):
    srv = ws_server(server_factory, host="::1")
    add_users(srv, "alice")
    ws_phone(srv, "alice")


# ---- calls ------------------------------------------------------------------------------

@pytest.mark.parametrize("caller_ws", [False, True], ids=["udp_to_ws", "ws_to_udp"])
def test_call_bridges_udp_and_ws(srv, caller_ws):
    alice = ws_phone(srv, "alice") if caller_ws else udp_phone(srv, "alice")
    bob = udp_phone(srv, "bob") if caller_ws else ws_phone(srv, "bob")
    c, inv = ring(alice, bob)
    assert inv is not None
    out_proto = "UDP" if caller_ws else "WS"
    assert inv.all("via")[0].startswith(f"SIP/2.0/{out_proto} {srv.host}:{srv.port};"), inv.all("via")
    # Two Record-Route entries: each side reaches us over its own transport (RFC 3261 §16.6).
    rr = ", ".join(inv.all("record-route"))
    ws_rr, udp_rr = f"<sip:{srv.host}:{srv.port};lr;transport=ws>", f"<sip:{srv.host}:{srv.port};lr>"
    assert rr == (f"{udp_rr}, {ws_rr}" if caller_ws else f"{ws_rr}, {udp_rr}"), rr
    answer_and_caller_hangs_up(srv, alice, bob, c, inv)


@pytest.mark.parametrize("caller_ws,callee_ws", [(False, True), (True, False), (True, True)],
                         ids=["udp_to_ws", "ws_to_udp", "ws_to_ws"])
def test_callee_hangs_up_across_ws(srv, caller_ws, callee_ws):
    """The callee's BYE goes the other way along the route set, to the caller's Contact: a
    browser caller's (x.invalid;transport=ws) is reached over its WebSocket."""
    alice = ws_phone(srv, "alice") if caller_ws else udp_phone(srv, "alice")
    bob = ws_phone(srv, "bob") if callee_ws else udp_phone(srv, "bob")
    c, inv = ring(alice, bob)
    tag = rand(8)
    bob.reply(inv, 200, "OK", to_tag=tag, headers=[f"Contact: <sip:bob@{bob.hostport}>", "Content-Type: application/sdp"],
              body=SDP)
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    if caller_ws:
        contact = uri_of(inv.get("contact"))
        assert contact.endswith(".invalid;transport=ws"), contact
    bye, r = callee_hangs_up(alice, bob, inv, tag)
    assert bye is not None, "the callee's BYE did not reach the caller"
    assert r is not None and r.status == 200
    wait_log(srv, "call: ended alice@a.test -> bob@a.test")


def test_ws_phone_with_a_numeric_contact_is_reached_over_its_connection(srv):
    """A browser's Contact is never dialled, even one naming the host it connected from and
    no rport (over TCP that phone would get a new connection to its Contact)."""
    bob = WsUA(srv.addr, user="bob", domain="a.test", password="pw")
    r = bob.register(contact=f"<sip:bob@{srv.host}:9;transport=ws>")
    assert r is not None and r.status == 200, r
    alice = udp_phone(srv, "alice")
    c, inv = ring(alice, bob)
    assert inv is not None and inv.all("via")[0].startswith("SIP/2.0/WS "), inv
    bob.reply(inv, 486, "Busy Here", to_tag=rand(6))
    r = c.final()
    assert r is not None and r.status == 486
    c.ack_non2xx(r)


def test_ws_phone_whose_connection_closed_fails_at_once(srv):
    gone_phone_gets_480(srv, ws_phone(srv, "bob"))


# ---- bad input --------------------------------------------------------------------------

def test_upgrade_without_sip_is_refused(srv):
    ws = WsConn(srv.addr, connect=False)
    status, head = ws.handshake(protocols="chat, superchat")
    assert status == 400, head
    assert "sip" in ws.read_body(200).decode()
    assert closed_by_server(ws.s)
    ws = WsConn(srv.addr, connect=False)
    status, head = ws.handshake(protocols=None)
    assert status == 400, head
    assert closed_by_server(ws.s)
    wait_log(srv, "refused: 400 Sec-WebSocket-Protocol must offer sip")
    server_answers_options(srv)


def test_plain_get_gets_426(srv):
    s = socket.create_connection(srv.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    s.settimeout(5)
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    assert data.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"), data
    assert b"\r\nUpgrade: websocket\r\n" in data, data


def test_bad_and_oversized_requests_get_400(srv):
    for req in (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n", b"nonsense\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000):
        s = socket.create_connection(srv.addr)
        s.sendall(req)
        s.settimeout(5)
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (req[:30], head)
        assert closed_by_server(s), req[:30]
    wait_log(srv, "request header over 8192 bytes")
    server_answers_options(srv)


def test_message_over_the_limit_gets_1009(srv):
    ws = WsConn(srv.addr)
    ws.send(TEXT, b"OPTIONS " + b"x" * 70000)
    op, payload = ws.recv_frame()
    assert op == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009, (op, payload[:20])
    assert closed_by_server(ws.s)
    wait_log(srv, "WebSocket message over 65535 bytes: close 1009")
    server_answers_options(srv)


def test_fragments_over_the_limit_get_1009(srv):
    """The limit holds for a message in many small fragments too."""
    ws = WsConn(srv.addr)
    ws.s.sendall(frame(TEXT, b"x" * 30000, fin=False) + frame(0, b"x" * 30000, fin=False) +
                 frame(0, b"x" * 30000, fin=False))
    op, payload = ws.recv_frame()
    assert op == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009, (op, payload[:20])
    server_answers_options(srv)


def test_unmasked_frame_gets_1002(srv):
    ws = WsConn(srv.addr)
    ws.send(TEXT, options_msg(), mask=False)
    op, payload = ws.recv_frame()
    assert op == CLOSE and struct.unpack("!H", payload[:2])[0] == 1002, (op, payload[:20])
    assert closed_by_server(ws.s)
    wait_log(srv, "close 1002")


def test_close_handshake(srv):
    ws = WsConn(srv.addr)
    ws.send(CLOSE, struct.pack("!H", 1000) + b"bye")
    op, payload = ws.recv_frame()
    assert op == CLOSE and struct.unpack("!H", payload[:2])[0] == 1000, (op, payload)
    assert closed_by_server(ws.s)
    wait_log(srv, "WebSocket closed by the peer (code 1000)")


def test_half_frame_closed_at_idle_timeout(server_factory):
    srv = ws_server(server_factory, "--tcp-idle-timeout", "2")
    ws = WsConn(srv.addr)
    # A frame header announcing 1000 bytes, then 10 of them and silence.
    ws.s.sendall(frame(TEXT, b"x" * 1000)[:16])
    server_answers_options(srv)
    assert closed_by_server(ws.s, timeout=30)
    wait_log(srv, "closed: idle for 2 s")


def test_half_upgrade_closed_at_idle_timeout(server_factory):
    srv = ws_server(server_factory, "--tcp-idle-timeout", "2")
    s = socket.create_connection(srv.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr")
    assert closed_by_server(s, timeout=30)
    wait_log(srv, "closed: idle for 2 s")


def test_trickled_upgrade_closed_at_its_deadline(server_factory):
    """An upgrade request sent a byte a second never goes idle, yet holds a descriptor: it
    is closed once the upgrade's deadline (10 s) passes, and the server goes on answering."""
    srv = ws_server(server_factory)
    s = socket.create_connection(srv.addr)
    s.sendall(b"GET / HTTP/1.1\r\n")
    closed = False
    for ch in b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: " + b"y" * 60:
        try:
            s.sendall(bytes([ch]))
        except OSError:
            closed = True
            break
        if closed_by_server(s, timeout=1):
            closed = True
            break
    assert closed
    wait_log(srv, "closed: WebSocket upgrade not done after 10 s")
    server_answers_options(srv)


def test_per_source_cap_applies_to_ws(server_factory):
    srv = ws_server(server_factory, "--tcp-max-per-source", "5")
    socks = [socket.create_connection(srv.addr) for _ in range(8)]
    wait_log(srv, "connections from this address, the limit (tcp-max-per-source)")
    for s in socks:
        s.close()


# ---- WSS: WebSocket over TLS ----------------------------------------------------------------

def wss_server(server_factory, *extra):
    return stream_server(server_factory, "wss", *extra)


def wss_ctx(server):
    """A client context checking the self-signed certificate Parley keeps beside its database."""
    return ssl.create_default_context(cafile=server.db + "-tls.crt")


def test_wss_register_options_and_1009(server_factory):
    srv = wss_server(server_factory)
    add_users(srv, "alice")
    alice = WsUA(srv.addr, user="alice", domain="a.test", password="pw", tls=wss_ctx(srv))
    r = alice.register()
    assert r is not None and r.status == 200, r
    out = wait_for(lambda: "alice@a.test" in (o := parley("reg", "list", db=srv.db).stdout) and o, 5)
    assert re.search(r"alice@a\.test.*\bWSS\b", out), out
    wait_log(srv, "TLS established")
    ws = WsConn(srv.addr, tls=wss_ctx(srv))
    ws.send(PING, b"p")
    assert ws.recv_frame() == (PONG, b"p")
    ws.send(TEXT, b"OPTIONS " + b"x" * 70000)
    op, payload = ws.recv_frame()
    assert op == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009, (op, payload[:20])


@pytest.mark.parametrize("caller_wss", [False, True], ids=["udp_to_wss", "wss_to_udp"])
def test_wss_call_bridges_udp(server_factory, caller_wss):
    """A call between a browser on WSS and a UDP phone, hung up by the callee: the INVITE or
    the BYE reaches the browser over its WSS connection."""
    srv = wss_server(server_factory)
    add_users(srv, "alice", "bob")

    def wss_phone(user):
        ua = WsUA(srv.addr, user=user, domain="a.test", password="pw", tls=wss_ctx(srv))
        r = ua.register()
        assert r is not None and r.status == 200, r
        return ua

    alice = wss_phone("alice") if caller_wss else udp_phone(srv, "alice")
    bob = udp_phone(srv, "bob") if caller_wss else wss_phone("bob")
    c, inv = ring(alice, bob)
    assert inv is not None
    assert inv.all("via")[0].startswith(f"SIP/2.0/{'UDP' if caller_wss else 'WSS'} "), inv.all("via")
    tag = rand(8)
    bob.reply(inv, 200, "OK", to_tag=tag, headers=[f"Contact: <sip:bob@{bob.hostport}>", "Content-Type: application/sdp"],
              body=SDP)
    r = c.final()
    assert r is not None and r.status == 200
    c.ack()
    assert bob.recv(3, is_req("ACK")) is not None
    bye, r = callee_hangs_up(alice, bob, inv, tag)
    assert bye is not None, "the callee's BYE did not reach the caller"
    assert r is not None and r.status == 200
    wait_log(srv, "call: ended alice@a.test -> bob@a.test")
