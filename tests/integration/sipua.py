"""sipua.py: a small SIP user agent for the integration tests: builds requests, answers
digest challenges (MD5 and SHA-256, qop=auth) and reads responses over UDP on loopback; and
the two ends of a call through the proxy (Call, callee_*, ring, ring_forked)."""
import hashlib
import random
import re
import socket
import string
import threading
import time

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
           "v": "via", "o": "event", "r": "refer-to", "u": "allow-events"}


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\n")


def free_port(host="127.0.0.1", tcp=False):
    """A UDP (or, with tcp, TCP) port below 60000 that nothing on host is bound to now."""
    while True:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                          socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if port < 60000:
            return port


def free_port_both(host="127.0.0.1", tcp_next=False):
    """A port nothing on host is bound to for UDP nor for TCP (a server or phone that listens
    on both with one number); with tcp_next, the port after it free for TCP as well (where
    baresip listens for TLS)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        p = free_port(host)
        held = []
        try:
            for q in (p, p + 1) if tcp_next else (p,):
                t = socket.socket(fam, socket.SOCK_STREAM)
                held.append(t)
                t.bind((host, q))
            return p
        except OSError:
            continue
        finally:
            for t in held:
                t.close()


def rand(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Msg:
    """A parsed SIP message: start line, headers (lower-case names, list of values), body."""

    def __init__(self, data: bytes):
        self.raw = data
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = {}
        for ln in lines[1:]:
            if ln[:1] in (" ", "\t") and self.headers:
                continue
            name, _, value = ln.partition(":")
            name = name.strip().lower()
            name = COMPACT.get(name, name)
            self.headers.setdefault(name, []).append(value.strip())
        self.body = body
        parts = self.start.split(" ", 2)
        self.is_response = parts[0].startswith("SIP/")
        if self.is_response:
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.method = None
        else:
            self.status = None
            self.method = parts[0]
            self.ruri = parts[1]

    def get(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[0] if v else default

    def all(self, name):
        """Every value of a header, with comma-separated lists split."""
        out = []
        for v in self.headers.get(name.lower(), []):
            out += [x.strip() for x in split_list(v)]
        return out

    @property
    def cseq_method(self):
        return self.get("cseq", "0 X").split()[1]

    def __repr__(self):
        return f"<Msg {self.start!r}>"


def split_list(value):
    out, cur, q, ang = [], "", False, False
    for ch in value:
        if ch == '"':
            q = not q
        elif ch == "<" and not q:
            ang = True
        elif ch == ">" and not q:
            ang = False
        if ch == "," and not q and not ang:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def parse_challenge(value):
    scheme, _, rest = value.partition(" ")
    params = dict((k.lower(), v1 if v1 else v2) for k, v1, v2 in
                  re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest))
    params["scheme"] = scheme
    return params


def digest_hash(alg):
    alg = (alg or "MD5").upper()
    if alg.startswith("SHA-256"):
        return lambda s: hashlib.sha256(s.encode()).hexdigest()
    return lambda s: hashlib.md5(s.encode()).hexdigest()


def digest_response(ch, method, uri, user, password, nc=1, cnonce=None, realm=None):
    """Returns the value of an Authorization header answering challenge dict ch."""
    H = digest_hash(ch.get("algorithm"))
    realm = ch["realm"] if realm is None else realm
    ha1 = H(f"{user}:{realm}:{password}")
    ha2 = H(f"{method}:{uri}")
    cnonce = cnonce or rand(8)
    ncs = f"{nc:08x}"
    qop = "auth" if "qop" in ch else None
    if qop:
        resp = H(f"{ha1}:{ch['nonce']}:{ncs}:{cnonce}:{qop}:{ha2}")
    else:
        resp = H(f"{ha1}:{ch['nonce']}:{ha2}")
    v = (f'Digest username="{user}", realm="{realm}", nonce="{ch["nonce"]}", uri="{uri}", '
         f'response="{resp}", algorithm={ch.get("algorithm", "MD5")}')
    if qop:
        v += f', qop={qop}, nc={ncs}, cnonce="{cnonce}"'
    if "opaque" in ch:
        v += f', opaque="{ch["opaque"]}"'
    return v


class UA:
    """One UDP endpoint on loopback that talks to a server at (host, port)."""

    def __init__(self, server, user=None, domain=None, password=None, host="127.0.0.1", port=0):
        self.server = server
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.user, self.domain, self.password = user, domain, password
        self.cseq = 0
        self.call_id = rand(16) + "@test"
        self.tag = rand(8)
        self.pending = []

    def close(self):
        self.sock.close()

    @property
    def hostport(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def aor(self):
        return f"sip:{self.user}@{self.domain}"

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendto(data, self.server)

    def build(self, method, ruri, headers=(), body=b"", to=None, frm=None, call_id=None,
              cseq=None, branch=None, via=None, contact=True, max_forwards=70, to_tag=None):
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = branch or "z9hG4bK" + rand(12)
        to = to or f"<{self.aor}>"
        if to_tag:
            to += f";tag={to_tag}"
        frm = frm or f"<{self.aor}>;tag={self.tag}"
        lines = [f"{method} {ruri} SIP/2.0",
                 via or f"Via: SIP/2.0/UDP {self.hostport};branch={branch};rport",
                 f"From: {frm}", f"To: {to}", f"Call-ID: {call_id or self.call_id}",
                 f"CSeq: {cseq} {method}"]
        if max_forwards is not None:
            lines.append(f"Max-Forwards: {max_forwards}")
        if contact is True:
            lines.append(f"Contact: <sip:{self.user or 'anon'}@{self.hostport}>")
        elif contact:
            lines.append(f"Contact: {contact}")
        lines += list(headers)
        if isinstance(body, str):
            body = body.encode()
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def recv(self, timeout=3.0, want=None):
        """Next message (matching want(msg) when given); None on timeout."""
        for i, m in enumerate(self.pending):
            if want is None or want(m):
                return self.pending.pop(i)
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            m = Msg(data)
            if want is None or want(m):
                return m
            self.pending.append(m)

    def collect(self, quiet):
        """Every message that arrives until none has come for quiet seconds, in order."""
        got = []
        while (m := self.recv(timeout=quiet)) is not None:
            got.append(m)
        return got

    def final(self, timeout=5.0, cseq_method=None):
        """Skips provisional responses; returns the first final response (or None)."""
        def want(m):
            return m.is_response and m.status >= 200 and (cseq_method is None or m.cseq_method == cseq_method)
        return self.recv(timeout, want)

    def request(self, method, ruri, auth=True, headers=(), uri_for_digest=None, **kw):
        """Sends a request; on 401/407 answers the first acceptable challenge once. Returns the
        final response."""
        self.send_raw(self.build(method, ruri, headers=headers, **kw))
        r = self.final(cseq_method=method)
        if auth and r is not None and r.status in (401, 407) and self.password:
            hdr = "www-authenticate" if r.status == 401 else "proxy-authenticate"
            chs = [parse_challenge(v) for v in r.headers.get(hdr, [])]
            ch = chs[0]
            cred = digest_response(ch, method, uri_for_digest or ruri, self.user, self.password)
            name = "Authorization" if r.status == 401 else "Proxy-Authorization"
            kw.pop("cseq", None)
            self.send_raw(self.build(method, ruri, headers=list(headers) + [f"{name}: {cred}"], **kw))
            r = self.final(cseq_method=method)
        return r

    def register(self, expires=3600, contact=True, headers=(), **kw):
        h = list(headers)
        if expires is not None:
            h.append(f"Expires: {expires}")
        return self.request("REGISTER", f"sip:{self.domain}", headers=h, contact=contact, **kw)

    def reply(self, req, status, reason, to_tag=None, headers=(), body=b""):
        """Builds and sends a response to request req (a Msg)."""
        lines = [f"SIP/2.0 {status} {reason}"]
        for v in req.headers.get("via", []):
            lines.append(f"Via: {v}")
        lines.append(f"From: {req.get('from')}")
        to = req.get("to")
        if to_tag and ";tag=" not in to:
            to += f";tag={to_tag}"
        lines.append(f"To: {to}")
        lines.append(f"Call-ID: {req.get('call-id')}")
        lines.append(f"CSeq: {req.get('cseq')}")
        for v in req.headers.get("record-route", []):
            lines.append(f"Record-Route: {v}")
        lines += list(headers)
        if isinstance(body, str):
            body = body.encode()
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body, self.server)


def is_req(method):
    """A recv filter: requests of this method."""
    return lambda m: not m.is_response and m.method == method


def is_resp(method, status=None):
    """A recv filter: responses to this method (with this status, when given)."""
    def want(m):
        if not m.is_response or m.cseq_method != method:
            return False
        return status is None or m.status == status
    return want


def tag_of(value):
    """The tag parameter of a From or To value, or None."""
    m = re.search(r";\s*tag=([^;>\s]+)", value)
    return m.group(1) if m else None


def uri_of(value):
    """The URI of a name-addr (inside <>) or of a bare addr-spec."""
    m = re.search(r"<([^>]+)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


class Call:
    """The caller's side of one INVITE: sends it, answers the 407, keeps what the dialog needs."""

    def __init__(self, ua, target, call_id=None):
        self.ua = ua
        self.target = target
        self.call_id = call_id or rand(16) + "@test"
        self.to = f"<{target}>"
        self.headers = ["Content-Type: application/sdp"]
        self.remote_tag = None
        self.remote_target = None
        self.route = []
        self.cseq = None
        self.branch = None

    def _send(self, extra=()):
        self.ua.cseq += 1
        self.cseq = self.ua.cseq
        self.branch = "z9hG4bK" + rand(12)
        self.ua.send_raw(self.ua.build("INVITE", self.target, headers=self.headers + list(extra), body=SDP,
                                       to=self.to, call_id=self.call_id, cseq=self.cseq, branch=self.branch))

    def ack_non2xx(self, resp):
        """The ACK for a non-2xx final: same branch as the INVITE (hop by hop, §17.1.1.3)."""
        self.ua.send_raw(self.ua.build("ACK", self.target, to=resp.get("to"), call_id=self.call_id,
                                       cseq=self.cseq, branch=self.branch, contact=False))

    def start(self):
        """Sends the INVITE and answers the proxy's challenge; returns without waiting for more."""
        self._send()
        r = self.ua.recv(5, lambda m: m.is_response and m.cseq_method == "INVITE" and m.status >= 200)
        assert r is not None, "no answer to the INVITE"
        if r.status == 407:
            self.ack_non2xx(r)
            ch = parse_challenge(r.get("proxy-authenticate"))
            cred = digest_response(ch, "INVITE", self.target, self.ua.user, self.ua.password)
            self._send([f"Proxy-Authorization: {cred}"])
            return None
        return r

    def final(self, timeout=5.0):
        r = self.ua.recv(timeout, lambda m: m.is_response and m.cseq_method == "INVITE" and m.status >= 200
                         and self._mine(m))
        if r is not None and r.status < 300:
            self.remote_tag = tag_of(r.get("to"))
            self.remote_target = uri_of(r.get("contact"))
            self.route = list(reversed(r.all("record-route")))
            self.to = r.get("to")
        return r

    def _mine(self, m):
        return m.get("call-id") == self.call_id and int(m.get("cseq").split()[0]) == self.cseq

    def ack(self):
        """The ACK for a 2xx: end to end along the recorded route (§13.2.2.4)."""
        self.ua.send_raw(self.ua.build("ACK", self.remote_target, to=self.to, call_id=self.call_id,
                                       cseq=self.cseq, contact=False,
                                       headers=[f"Route: {', '.join(self.route)}"] if self.route else []))

    def in_dialog(self, method):
        """Sends an in-dialog request (BYE, ...) and returns its final response."""
        self.ua.cseq += 1
        self.ua.send_raw(self.ua.build(method, self.remote_target, to=self.to, call_id=self.call_id,
                                       cseq=self.ua.cseq, contact=False,
                                       headers=[f"Route: {', '.join(self.route)}"] if self.route else []))
        return self.ua.final(5, cseq_method=method)

    def cancel(self):
        """CANCEL for the INVITE: same Request-URI, branch, Call-ID, CSeq number (§9.1)."""
        self.ua.send_raw(self.ua.build("CANCEL", self.target, to=f"<{self.target}>", call_id=self.call_id,
                                       cseq=self.cseq, branch=self.branch, contact=False))
        return self.ua.final(5, cseq_method="CANCEL")


def callee_answer(ua, inv, status, reason, tag, body=b""):
    """The callee's phone answers INVITE inv with status (with its Contact on a 2xx)."""
    headers = [f"Contact: <sip:{ua.user}@{ua.hostport}>"] if status < 300 else []
    if body:
        headers.append("Content-Type: application/sdp")
    ua.reply(inv, status, reason, to_tag=tag, headers=headers, body=body)


def callee_bye(ua, inv, tag, cseq=1, transport="UDP"):
    """The callee hangs up: its route set is the Record-Route of the INVITE in order."""
    route = inv.all("record-route")
    lines = [f"BYE {uri_of(inv.get('contact'))} SIP/2.0",
             f"Via: SIP/2.0/{transport} {ua.hostport};branch=z9hG4bK{rand(12)};rport",
             f"From: {inv.get('to')};tag={tag}", f"To: {inv.get('from')}",
             f"Call-ID: {inv.get('call-id')}", f"CSeq: {cseq} BYE", "Max-Forwards: 70"]
    if route:
        lines.append(f"Route: {', '.join(route)}")
    lines.append("Content-Length: 0")
    ua.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())
    return ua.final(5, cseq_method="BYE")


def callee_hangs_up(caller, callee, inv, tag, timeout=5, transport="UDP"):
    """The callee sends BYE (callee_bye) while the caller's side, in a thread, answers the
    BYE it receives with 200. Returns (BYE seen by the caller or None, response to the BYE)."""
    got = {}

    def caller_side():
        bye = caller.recv(timeout, is_req("BYE"))
        got["bye"] = bye
        if bye is not None:
            caller.reply(bye, 200, "OK")
    th = threading.Thread(target=caller_side)
    th.start()
    r = callee_bye(callee, inv, tag, transport=transport)
    th.join()
    return got["bye"], r


def ring(caller, callee, target="sip:bob@a.test", timeout=5):
    """caller calls target and callee's phone gets the INVITE. Returns (call, INVITE at callee)."""
    c, (inv,) = ring_forked(caller, [callee], target, timeout)
    return c, inv


def ring_forked(caller, phones, target="sip:bob@a.test", timeout=5):
    """caller calls target, which forks to every phone given. Returns (call, INVITE at each phone)."""
    c = Call(caller, target)
    assert c.start() is None
    invs = [p.recv(timeout, is_req("INVITE")) for p in phones]
    assert None not in invs, "a callee's phone got no INVITE"
    return c, invs


def wait_for(pred, timeout=10.0, step=0.1):
    """Polls pred until it returns something true; returns that (or pred's last answer)."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
