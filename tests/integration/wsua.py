"""wsua.py: a small WebSocket client (RFC 6455: the upgrade, masked frames, ping, close) on a raw
socket (or a TLS one, for WSS), and the test user agent (sipua.UA) speaking SIP over it as a browser phone does (RFC 7118:
Via SIP/2.0/WSS with an .invalid host, Contact ...@x.invalid;transport=ws)."""
import base64
import hashlib
import os
import socket
import struct

from sipua import UA, rand

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


def upgrade_request(host, port, protocols="sip", key=None, path="/", extra=()):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", "Origin: http://test.invalid"]
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def frame(opcode, payload=b"", fin=True, mask=True):
    """One frame as a client sends it (masked unless mask=False)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsConn:
    """A WebSocket client connection to server (host, port)."""

    def __init__(self, server, host="127.0.0.1", protocols="sip", connect=True, tls=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.bind((host, 0))
        self.s.connect(server)
        if tls is not None:  # an ssl.SSLContext: WSS, the handshake verifying the server
            self.s = tls.wrap_socket(self.s, server_hostname=server[0])
        self.buf = b""
        self.server = server
        self.close_code = None  # the code of the server's close frame, once one came
        self.eof = False
        if connect:
            status, head = self.handshake(protocols)
            assert status == 101, head

    def handshake(self, protocols="sip", raw=None):
        """Sends the upgrade (or raw bytes); returns (status, response head). A 101 is checked
        for the right Sec-WebSocket-Accept and the sip subprotocol."""
        h = f"[{self.server[0]}]" if ":" in self.server[0] else self.server[0]
        req, key = upgrade_request(h, self.server[1], protocols)
        self.s.sendall(raw if raw is not None else req)
        head = self.read_head()
        status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/1.1 ") else 0
        if status == 101:
            want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            hdrs = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                    for ln in head.split("\r\n")[1:] if ":" in ln}
            assert hdrs.get("sec-websocket-accept") == want, head
            assert hdrs.get("sec-websocket-protocol") == "sip", head
            assert hdrs.get("upgrade", "").lower() == "websocket", head
        return status, head

    def read_head(self, timeout=5.0):
        self.s.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                break
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head.decode("utf-8", "replace")

    def read_body(self, n, timeout=5.0):
        self.s.settimeout(timeout)
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                break
            self.buf += d
        body, self.buf = self.buf[:n], self.buf[n:]
        return body

    def send(self, opcode, payload=b"", **kw):
        self.s.sendall(frame(opcode, payload, **kw))

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)  # socket.timeout propagates
            if not d:
                self.eof = True
                raise socket.timeout("connection closed by the server")
            self.buf += d

    def recv_frame(self, timeout=5.0):
        """(opcode, payload) of the next frame from the server, which must be unmasked."""
        self.s.settimeout(timeout)
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "the server masked a frame"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        op = b0 & 0x0F
        if op == CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return op, payload

    def recv_msg(self, timeout=5.0):
        """The next text or binary message (pongs skipped; a close raises socket.timeout)."""
        while True:
            op, payload = self.recv_frame(timeout)
            if op in (TEXT, BINARY):
                return payload
            if op == CLOSE:
                raise socket.timeout(f"closed by the server with code {self.close_code}")

    def close(self):
        self.s.close()


class _WsStream:
    """Looks like the UA's UDP socket (sendto, recvfrom, settimeout) but carries SIP over one
    WebSocket, one message per text frame."""

    def __init__(self, server, host, tls=None):
        self.ws = WsConn(server, host, tls=tls)
        self.timeout = 3.0

    def getsockname(self):
        return self.ws.s.getsockname()

    def settimeout(self, t):
        self.timeout = t

    def sendto(self, data, _addr):
        self.ws.send(TEXT, data)

    def recvfrom(self, _n):
        return self.ws.recv_msg(self.timeout), None

    def close(self):
        self.ws.close()


class WsUA(UA):
    """A UA over its own WebSocket to the server, writing Via and Contact as JsSIP does."""

    def __init__(self, server, user=None, domain=None, password=None, host="127.0.0.1", tls=None):
        super().__init__(server, user=user, domain=domain, password=password, host=host)
        self.sock.close()
        self.sock = _WsStream(server, host, tls)
        self.real = self.sock.getsockname()[:2]
        # What a browser writes: it has no address of its own to give.
        self.invalid = rand(8).lower() + ".invalid"
        self.host, self.port = self.invalid, 0

    @property
    def hostport(self):
        return self.invalid

    @property
    def ws(self):
        return self.sock.ws

    def _mine(self, data):
        data = data.replace(b"Via: SIP/2.0/UDP ", b"Via: SIP/2.0/WSS ", 1).replace(b";rport\r\n", b"\r\n", 1)
        return data.replace(f"@{self.invalid}>".encode(), f"@{self.invalid};transport=ws>".encode())

    def build(self, *a, **kw):
        return self._mine(super().build(*a, **kw))

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendto(self._mine(data), None)

    def reply(self, req, status, reason, to_tag=None, headers=(), body=b""):
        headers = [h.replace(f"@{self.invalid}>", f"@{self.invalid};transport=ws>") for h in headers]
        return super().reply(req, status, reason, to_tag=to_tag, headers=headers, body=body)
