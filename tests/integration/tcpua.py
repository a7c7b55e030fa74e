"""tcpua.py: the test user agent (sipua.UA) over one TCP (or TLS) connection: messages framed
by Content-Length, Via saying TCP (TLS), everything else as over UDP."""
import socket

from sipua import UA


class _Stream:
    """Looks like the UA's UDP socket (sendto, recvfrom, settimeout) but carries SIP over one
    TCP connection to the server."""

    def __init__(self, server, host, tls=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.bind((host, 0))
        self.s.connect(server)
        if tls is not None:  # an ssl.SSLContext: the handshake runs here, verifying the server
            self.s = tls.wrap_socket(self.s, server_hostname=server[0])
        self.buf = b""
        self.closed = False

    def getsockname(self):
        return self.s.getsockname()

    def settimeout(self, t):
        self.s.settimeout(t)

    def sendto(self, data, _addr):
        self.s.sendall(data)

    def _frame(self):
        """One message off the front of the buffer, or None. CRLF keep-alive answers are
        dropped."""
        while self.buf.startswith(b"\r\n") and not self.buf.startswith(b"\r\n\r\n"):
            self.buf = self.buf[2:]
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("utf-8", "replace")
        n = 0
        for ln in head.split("\r\n")[1:]:
            name, _, value = ln.partition(":")
            if name.strip().lower() in ("content-length", "l"):
                n = int(value.strip())
        if len(self.buf) < end + 4 + n:
            return None
        msg, self.buf = self.buf[:end + 4 + n], self.buf[end + 4 + n:]
        return msg

    def recvfrom(self, _n):
        while True:
            m = self._frame()
            if m is not None:
                return m, None
            data = self.s.recv(65536)  # socket.timeout propagates, as with UDP
            if not data:
                self.closed = True
                raise socket.timeout("connection closed by the server")
            self.buf += data

    def close(self):
        self.s.close()


class TcpUA(UA):
    """A UA whose messages go over its own TCP connection to the server (over TLS when tls,
    an ssl.SSLContext, is given)."""

    def __init__(self, server, user=None, domain=None, password=None, host="127.0.0.1", rport=True, tls=None):
        super().__init__(server, user=user, domain=domain, password=password, host=host)
        self.rport = rport  # False: a phone that listens where its Contact says
        self.proto = "TLS" if tls is not None else "TCP"
        self.sock.close()
        self.sock = _Stream(server, host, tls)
        self.host, self.port = self.sock.getsockname()[:2]

    def _mine(self, data):
        # A phone on TCP says so in its Contact, or requests inside its dialogs would be
        # sent to it over UDP.
        return data.replace(f"@{self.hostport}>".encode(),
                            f"@{self.hostport};transport={self.proto.lower()}>".encode())

    def build(self, *a, **kw):
        data = super().build(*a, **kw).replace(b"Via: SIP/2.0/UDP ", f"Via: SIP/2.0/{self.proto} ".encode(), 1)
        if not self.rport:
            data = data.replace(b";rport\r\n", b"\r\n", 1)
        return self._mine(data)

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        # callee_bye writes its own UDP Via.
        self.sock.sendto(self._mine(data.replace(b"Via: SIP/2.0/UDP ", f"Via: SIP/2.0/{self.proto} ".encode(), 1)),
                         None)

    def reply(self, req, status, reason, to_tag=None, headers=(), body=b""):
        headers = [h.replace(f"@{self.hostport}>", f"@{self.hostport};transport={self.proto.lower()}>")
                   for h in headers]
        return super().reply(req, status, reason, to_tag=to_tag, headers=headers, body=body)
