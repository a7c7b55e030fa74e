"""ngpeer.py: the media relay's side of the integration tests: a bencode codec, a client for
rtpengine's ng control protocol (cookie, a space, a bencoded dict, over UDP), a real rtpengine
started on loopback with its own ports, a silent ng peer that takes commands and never answers,
and small SDP readers and builders (a plain RTP/AVP offer and a browser's WebRTC offer)."""
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

from sipua import free_port, rand


# ---- bencode ---------------------------------------------------------------------------------

def bencode(v):
    """bytes of v: dict (keys sorted, as the format wants), list, int, str or bytes."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError(f"cannot bencode {type(v).__name__}")


def bdecode(data):
    """The value bencoded in data (strings come back as str, undecodable bytes escaped);
    ValueError when data is not exactly one value."""
    v, i = _bdecode(data, 0)
    if i != len(data):
        raise ValueError(f"trailing bytes after offset {i}")
    return v


def _bdecode(d, i):
    if i >= len(d):
        raise ValueError("truncated")
    c = d[i:i + 1]
    if c == b"i":
        j = d.index(b"e", i)
        return int(d[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while d[i:i + 1] != b"e":
            v, i = _bdecode(d, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while d[i:i + 1] != b"e":
            k, i = _bdecode(d, i)
            v, i = _bdecode(d, i)
            out[k] = v
        return out, i + 1
    if c.isdigit():
        j = d.index(b":", i)
        n = int(d[i:j])
        s = d[j + 1:j + 1 + n]
        if len(s) != n:
            raise ValueError("truncated string")
        return s.decode("utf-8", "surrogateescape"), j + 1 + n
    raise ValueError(f"bad bencode byte {c!r} at {i}")


def ng_parse(datagram):
    """(cookie, dict) of one ng datagram."""
    cookie, sep, rest = datagram.partition(b" ")
    if not sep:
        raise ValueError("no cookie")
    return cookie.decode(), bdecode(rest)


# ---- a client ----------------------------------------------------------------------------------

def ng(addr, command, timeout=2.0, **args):
    """Sends one ng command to addr and returns the reply's dict (None on timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        cookie = rand(12)
        msg = dict(args, command=command)
        s.sendto(cookie.encode() + b" " + bencode(msg), addr)
        end = time.time() + timeout
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                return None
            c, reply = ng_parse(data)
            if c == cookie:
                return reply
        return None
    finally:
        s.close()


# ---- a real rtpengine --------------------------------------------------------------------------

class Rtpengine:
    """rtpengine on 127.0.0.1 with a free ng port and an RTP port range of its own. No config
    file (Debian's /etc/rtpengine/rtpengine.conf would give every instance the same CLI and
    HTTP ports) and no delete delay, so a deleted call leaves `list` at once."""

    def __init__(self, tmp, name="rtpengine", span=200):
        self.tmp = tmp
        self.name = name
        self.port = free_port()
        base = random.randrange(42000, 58000 - span, 2)
        self.port_min, self.port_max = base, base + span - 1
        self.logpath = os.path.join(tmp, f"{name}.log")
        self.proc = None

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def spec(self):
        """The --rtpengine value that names it."""
        return f"udp:127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            ["rtpengine", "--config-file=none", "--interface=127.0.0.1",
             f"--listen-ng=127.0.0.1:{self.port}", f"--listen-cli=127.0.0.1:{free_port(tcp=True)}",
             "--foreground", "--log-stderr", "--table=-1", "--delete-delay=0",
             f"--port-min={self.port_min}", f"--port-max={self.port_max}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited {self.proc.returncode}: {self.read_log()[-2000:]}")
            r = ng(self.addr, "ping", timeout=0.3)
            if r is not None:
                assert r.get("result") == "pong", r
                return self
        raise RuntimeError("rtpengine did not answer ping: " + self.read_log()[-2000:])

    def read_log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def command(self, command, **args):
        r = ng(self.addr, command, **args)
        assert r is not None, f"rtpengine did not answer {command}"
        return r

    def calls(self):
        """The Call-IDs rtpengine holds now."""
        r = self.command("list")
        assert r.get("result") == "ok", r
        return list(r.get("calls", []))

    def query(self, call_id):
        return self.command("query", **{"call-id": call_id})

    def local_ports(self, call_id):
        """Every port rtpengine has opened for call_id (its side of every stream)."""
        q = self.query(call_id)
        ports = set()
        for t in q.get("tags", {}).values():
            for m in t.get("medias", []):
                for s in m.get("streams", []):
                    if int(s.get("local port", 0)):
                        ports.add(int(s["local port"]))
        return ports

    def all_local_ports(self):
        ports = set()
        for cid in self.calls():
            ports |= self.local_ports(cid)
        return ports

    def owns(self, port):
        return self.port_min <= port <= self.port_max

    def wait_no_calls(self, timeout=5.0):
        """Waits until rtpengine holds no call; returns what it still holds (empty on success)."""
        end = time.time() + timeout
        while True:
            held = self.calls()
            if not held or time.time() > end:
                return held
            time.sleep(0.1)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None


class SilentPeer:
    """A UDP socket at an ng address that takes every command and never answers; it keeps
    what it got, decoded ((cookie, dict), or the raw bytes when they are not ng)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got = []
        self._stop = False
        self.sock.settimeout(0.1)
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    @property
    def spec(self):
        return f"udp:127.0.0.1:{self.port}"

    def _run(self):
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.got.append(ng_parse(data))
            except ValueError:
                self.got.append(data)

    def commands(self):
        return [d.get("command") for c, d in (x for x in self.got if isinstance(x, tuple))]

    def close(self):
        self._stop = True
        self.th.join()
        self.sock.close()


def dead_port():
    """A UDP port on 127.0.0.1 where nothing listens."""
    return free_port()


# ---- SDP ---------------------------------------------------------------------------------------

def plain_sdp(port, addr="127.0.0.1", direction=None, session=1, version=1):
    """A phone's plain audio SDP: RTP/AVP, PCMU and PCMA and telephone-event."""
    s = (f"v=0\r\no=- {session} {version} IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
         f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
         f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n")
    if direction:
        s += f"a={direction}\r\n"
    return s


def webrtc_sdp(port, addr="127.0.0.1"):
    """What a browser offers: UDP/TLS/RTP/SAVPF with ICE credentials and host candidates, a DTLS
    fingerprint with setup:actpass, rtcp-mux, Opus and PCMU."""
    fp = ":".join(f"{random.randrange(256):02X}" for _ in range(32))
    return ("v=0\r\n"
            f"o=- 4611731400430051336 2 IN IP4 {addr}\r\n"
            "s=-\r\nt=0 0\r\n"
            "a=group:BUNDLE 0\r\n"
            "a=extmap-allow-mixed\r\n"
            "a=msid-semantic: WMS 7c8a4e0f-2b1d-4c9a-9f1e-3a5b6c7d8e9f\r\n"
            f"m=audio {port} UDP/TLS/RTP/SAVPF 111 0 8 126\r\n"
            f"c=IN IP4 {addr}\r\n"
            f"a=rtcp:{port} IN IP4 {addr}\r\n"
            f"a=candidate:1467250027 1 udp 2122260223 {addr} {port} typ host generation 0 network-id 1\r\n"
            f"a=candidate:2399519285 1 udp 1686052607 203.0.113.77 {port} typ srflx raddr {addr} "
            f"rport {port} generation 0 network-id 1\r\n"
            "a=ice-ufrag:Xb3q\r\n"
            "a=ice-pwd:y5ZJm7lqYfqc3nQZkRJkBWcE\r\n"
            "a=ice-options:trickle\r\n"
            f"a=fingerprint:sha-256 {fp}\r\n"
            "a=setup:actpass\r\n"
            "a=mid:0\r\n"
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
            "a=sendrecv\r\n"
            "a=msid:7c8a4e0f-2b1d-4c9a-9f1e-3a5b6c7d8e9f 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\r\n"
            "a=rtcp-mux\r\n"
            "a=rtpmap:111 opus/48000/2\r\n"
            "a=rtcp-fb:111 transport-cc\r\n"
            "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:126 telephone-event/8000\r\n"
            "a=ssrc:3735928559 cname:kq0dP3Xy9vTnL2Ab\r\n")


class Sdp:
    """The parts of an SDP body the tests look at: the connection addresses (session level and
    per media), each m= line (media, port, proto, formats) and every a= line."""

    def __init__(self, body):
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.text = body
        self.lines = [ln for ln in re.split(r"\r?\n", body) if ln]
        self.session_c = None
        self.media = []          # dicts: media, port, proto, fmts, c, attrs
        self.attrs = []          # every a= line's value, session and media level
        for ln in self.lines:
            k, _, v = ln.partition("=")
            if k == "c":
                addr = v.split()[-1].split("/")[0]
                if self.media:
                    self.media[-1]["c"] = addr
                else:
                    self.session_c = addr
            elif k == "m":
                f = v.split()
                self.media.append({"media": f[0], "port": int(f[1]), "proto": f[2], "fmts": f[3:],
                                   "c": None, "attrs": []})
            elif k == "a":
                self.attrs.append(v)
                if self.media:
                    self.media[-1]["attrs"].append(v)

    @property
    def audio(self):
        return next(m for m in self.media if m["media"] == "audio")

    def addr(self, m=None):
        """The connection address that applies to media m (the first audio by default)."""
        m = m or self.audio
        return m["c"] or self.session_c

    def has_attr(self, name):
        return any(a == name or a.startswith(name + ":") for a in self.attrs)

    def direction(self, m=None):
        m = m or self.audio
        for a in m["attrs"]:
            if a in ("sendrecv", "sendonly", "recvonly", "inactive"):
                return a
        return "sendrecv"
