"""test_capture.py: message capture against the real binary: `parley trace` drawing live
ladders in a pseudo-terminal (filters, Ctrl-C, no server), the trace socket (mode, stale
file, a client that does not read), HEP v3 copies of a call (decoded here, and read by
sngrep), and the [capture] settings."""
import fcntl
import os
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import termios
import time

from conftest import BIN, answer_and_caller_hangs_up, parley, phones, wait_log
from sipua import free_port, rand, ring

QUICK = 10


class Pty:
    """A command on a pseudo-terminal of its own (its controlling terminal, so that ^C is a
    SIGINT as at a keyboard); the test reads what it draws."""

    def __init__(self, *args):
        self.master, slave = os.openpty()

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen([BIN] + list(args), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=ctty)
        os.close(slave)
        self.out = ""

    def read(self, timeout=0.2):
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                return self.out
            r, _, _ = select.select([self.master], [], [], left)
            if not r:
                return self.out
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the other side is closed (EIO)
                return self.out
            if not data:
                return self.out
            self.out += data.decode("utf-8", "replace")

    def expect(self, pattern, timeout=5.0):
        """Reads until the regex matches the output so far; fails with the output."""
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, self.out, re.M)
            if m:
                return m
            self.read(0.1)
        raise AssertionError(f"{pattern!r} not in the trace:\n{self.out}")

    def ctrl_c(self):
        os.write(self.master, b"\x03")
        rc = self.proc.wait(QUICK)
        self.read(0.2)
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def trace(server, *args):
    return Pty("trace", "--db", server.db, *args)


def wait_clients(server, n):
    """The server has accepted n trace clients (so that none misses the next message)."""
    wait_log(server, f"a trace client connected ({n} now)")


def lines_with(out, label):
    return [ln for ln in out.splitlines() if re.search(r"-" + re.escape(label) + r"-", ln)]


def place_call(server, alice, bob):
    c, inv = ring(alice, bob)
    answer_and_caller_hangs_up(server, alice, bob, c, inv)
    return c.call_id


def test_trace_draws_a_call_as_a_ladder_and_filters(server):
    alice, bob, carol = phones(server, "alice", "bob", "carol")
    everything = trace(server)
    by_id = None
    by_user = trace(server, "--user", "bob")
    other_user = trace(server, "--user", "carol@a.test")
    try:
        for t in (everything, by_user, other_user):
            t.expect(r"tracing calls of parley serve .*Ctrl-C stops")
        wait_clients(server, 3)
        call_id = place_call(server, alice, bob)
        everything.expect(r"-BYE-[\s\S]*-200 OK-[^\n]*" + re.escape(call_id))
        out = everything.out
        # The header names the columns: the caller's phone, Parley, the callee's phone.
        head = re.search(r"^\s+udp 127\.0\.0\.1:(\d+)\s+Parley\s+udp 127\.0\.0\.1:(\d+)\s*$", out, re.M)
        assert head, out
        assert int(head.group(1)) == alice.sock.getsockname()[1], out
        assert int(head.group(2)) == bob.sock.getsockname()[1], out
        # Each message of the call is an arrow: the INVITE goes right (alice -> Parley ->
        # bob), the answers left (bob -> Parley -> alice).
        call_lines = [ln for ln in out.splitlines() if call_id in ln]
        assert re.match(r"^\d\d:\d\d:\d\d\.\d{3}  ", call_lines[0]), call_lines
        invites = lines_with("\n".join(call_lines), "INVITE")
        assert len(invites) >= 3, out  # the challenged one, the one with credentials, the one to bob
        assert all(">" in ln and "<" not in ln for ln in invites), invites
        for label in ("407 Proxy Authentication Required"[:19], "100 Trying", "180 Ringing", "200 OK"):
            got = lines_with("\n".join(call_lines), label)
            assert got, f"no {label} arrow in:\n{out}"
            assert all("<" in ln and ">" not in ln for ln in got), got
        assert len(lines_with("\n".join(call_lines), "180 Ringing")) == 2, out  # bob->Parley, Parley->alice
        for label in ("ACK", "BYE"):
            assert lines_with("\n".join(call_lines), label), f"no {label} arrow in:\n{out}"
        # Every line has a lifeline per column; an arrow spans from one to another.
        assert all(ln.count("|") >= 1 for ln in call_lines), call_lines

        # --user bob: the call (From alice, To bob), with every message of it.
        by_user.expect(r"-BYE-[\s\S]*-200 OK-[^\n]*" + re.escape(call_id))
        assert lines_with(by_user.out, "180 Ringing") and lines_with(by_user.out, "ACK"), by_user.out
        # --call-id: only that call. Started now, it sees the next call's messages only if
        # they are that call's: a second call with another Call-ID stays off it.
        by_id = trace(server, "--call-id", call_id)
        by_id.expect(r"Ctrl-C stops")
        wait_clients(server, 4)
        # carol's REGISTER shows on --user carol only; another call of alice's on everything.
        assert carol.register().status == 200
        other_user.expect(r"-REGISTER-")
        other_user.expect(r"-200 OK-")
        call2 = place_call(server, alice, bob)
        everything.expect(r"-BYE-[^\n]*" + re.escape(call2))
        # A last message everyone sees after the rest: then nothing more is coming.
        c3, inv3 = ring(alice, bob)
        for t in (everything, by_user):
            t.expect(re.escape(c3.call_id))
        assert call2 not in by_id.out and c3.call_id not in by_id.out, by_id.out
        assert not lines_with(by_id.out, "INVITE"), by_id.out
        assert call_id not in other_user.out and call2 not in other_user.out, other_user.out
        assert not lines_with(other_user.out, "INVITE"), other_user.out
        assert "REGISTER" not in by_user.out, by_user.out
        # Ctrl-C stops it, status 0.
        for t in (everything, by_user, other_user, by_id):
            assert t.ctrl_c() == 0, t.out
    finally:
        for t in (everything, by_user, other_user, by_id):
            if t:
                t.close()


def test_tcp_messages_are_captured_both_ways(server_factory):
    """Streams go through the same two points as datagrams: a REGISTER over TCP and its
    answers show on the trace, with the transport in the column."""
    from conftest import add_users, register_ok, stream_server
    from tcpua import TcpUA
    s = stream_server(server_factory, "tcp")
    add_users(s, "dave")
    t = trace(s, "--user", "dave")
    try:
        t.expect(r"Ctrl-C stops")
        wait_clients(s, 1)
        ua = register_ok(TcpUA(s.addr, user="dave", domain="a.test", password="pw", host=s.host))
        port = ua.sock.getsockname()[1]
        t.expect(r"-200 OK-")
        assert re.search(rf"^\s+tcp 127\.0\.0\.1:{port}\s+Parley\s*$", t.out, re.M), t.out
        assert len(lines_with(t.out, "REGISTER")) == 2 and lines_with(t.out, "401 Unauthorized"), t.out
        assert all(">" in ln for ln in lines_with(t.out, "REGISTER")), t.out
        ua.close()
        assert t.ctrl_c() == 0
    finally:
        t.close()


def test_trace_without_a_server_exits_1(tmp_path):
    r = parley("trace", db=str(tmp_path / "none.db"))
    assert r.returncode == 1
    assert "no server is running" in r.stderr and "none.db.trace.sock" in r.stderr
    r = parley("trace", "--user", "", db=str(tmp_path / "none.db"))
    assert r.returncode == 2 and "--user" in r.stderr


def test_trace_socket_mode_stale_file_and_removal(server_factory):
    s = server_factory()
    path = s.db + ".trace.sock"
    # A socket file left behind by a server that was killed: replaced at start.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    s.start()
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.close()
    assert s.stop() == 0
    assert not os.path.exists(path)


class Frames:
    """Reads the trace socket's frames (4-byte length, then the frame)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""
        sock.settimeout(0.1)

    def read(self, timeout):
        out, end = [], time.time() + timeout
        while time.time() < end:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                break
            self.buf += data
            while len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) < 4 + n:
                    break
                out.append(self.buf[4:4 + n])
                self.buf = self.buf[4 + n:]
        return out


def test_a_trace_client_that_does_not_read_is_cut_off_not_waited_for(server_factory):
    # A flood from one source: the per-source rate limit would drop most of it.
    server = server_factory(extra=["--rate-limit", "0"]).start()
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(server.db + ".trace.sock")
    wait_clients(server, 1)
    ua = server.ua()
    pad = "x" * 1200
    # ~4000 messages of ~1.5 KB in and out: far over the 1 MB queue and the socket buffers.
    for i in range(2000):
        ua.send_raw(ua.build("OPTIONS", f"sip:{server.listen[4:]}", contact=False, headers=[f"X-Pad: {pad}"]))
        if i % 200 == 199:
            # The server answers throughout: it never waits for the trace client.
            got = ua.final(timeout=5)
            assert got is not None and got.status == 200
            ua.collect(quiet=0.05)
    ua.collect(quiet=0.3)
    # The next message after the backlog drains says how many were dropped.
    fs, reader = [], Frames(slow)
    end = time.time() + 30
    while time.time() < end and not any(f.startswith(b"dropped ") for f in fs):
        fs += reader.read(0.5)
        ua.send_raw(ua.build("OPTIONS", f"sip:{server.listen[4:]}", contact=False))
    drops = [f for f in fs if f.startswith(b"dropped ")]
    assert drops, f"{len(fs)} frames, no drop notice"
    # Dropping goes on until half the queue is free: a few notices, each for many messages.
    assert sum(int(d.split()[1]) for d in drops) > 100
    assert int(drops[0].split()[1]) > 100
    msgs = [f for f in fs if f.startswith(b"msg ")]
    assert msgs and re.match(rb"msg \d+ (in|out) udp 127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+\n(OPTIONS|SIP/2\.0)", msgs[0])
    slow.close()
    ua.close()


# ---- HEP -----------------------------------------------------------------------------------

def hep_decode(pkt):
    """The chunks of one HEP v3 packet as {type: bytes}; asserts the framing."""
    assert pkt[:4] == b"HEP3", pkt[:16]
    assert struct.unpack(">H", pkt[4:6])[0] == len(pkt)
    out, o = {}, 6
    while o < len(pkt):
        vendor, typ, ln = struct.unpack(">HHH", pkt[o:o + 6])
        assert vendor == 0 and ln >= 6 and o + ln <= len(pkt), (vendor, typ, ln)
        out[typ] = pkt[o + 6:o + ln]
        o += ln
    return out


def test_hep_copies_every_message_of_a_call(server_factory):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    hep_port = rx.getsockname()[1]
    s = server_factory(extra=["--hep", f"udp:127.0.0.1:{hep_port}", "--hep-id", "4242"]).start()
    alice, bob = phones(s, "alice", "bob")
    call_id = place_call(s, alice, bob)
    rx.settimeout(1.0)
    got = []
    try:
        while True:
            got.append(hep_decode(rx.recv(70000)))
    except socket.timeout:
        pass
    mine = [h for h in got if h.get(17) == call_id.encode()]
    seq = []
    for h in mine:
        assert h[1] == b"\x02" and h[2] == b"\x11" and h[11] == b"\x01"
        assert struct.unpack(">I", h[12])[0] == 4242
        assert abs(struct.unpack(">I", h[9])[0] - time.time()) < 60
        assert struct.unpack(">I", h[10])[0] < 1000000
        assert h[3] == b"\x7f\x00\x00\x01" and h[4] == b"\x7f\x00\x00\x01"
        sport, dport = struct.unpack(">H", h[7])[0], struct.unpack(">H", h[8])[0]
        payload = h[15].decode()
        assert f"Call-ID: {call_id}" in payload or f"call-id: {call_id}".lower() in payload.lower()
        first = payload.split("\r\n", 1)[0]
        seq.append((sport, dport, first))
    check_call_copies(seq, s, alice, bob)
    rx.close()


def check_call_copies(seq, s, alice, bob):
    """seq holds (source port, destination port, first line) of each copy of one call's
    messages: every hop of the call must be there, both ways through Parley."""
    a, b, p = alice.sock.getsockname()[1], bob.sock.getsockname()[1], s.port

    def has(src, dst, start):
        return any(x[0] == src and x[1] == dst and x[2].startswith(start) for x in seq)
    assert has(a, p, "INVITE sip:bob@a.test"), seq
    assert has(p, b, "INVITE "), seq
    assert has(b, p, "SIP/2.0 180") and has(p, a, "SIP/2.0 180"), seq
    assert has(b, p, "SIP/2.0 200") and has(p, a, "SIP/2.0 200"), seq
    assert has(a, p, "ACK ") and has(p, b, "ACK "), seq
    assert has(a, p, "BYE ") and has(p, b, "BYE "), seq
    assert has(b, p, "SIP/2.0 200 OK") and sum(1 for x in seq if x[2].startswith("SIP/2.0 200")) >= 4, seq


def pcap_udp_packets(path):
    """The UDP packets of a classic pcap file with Ethernet framing (what sngrep writes for
    what it took from HEP): (source address, source port, destination port, payload)."""
    data = path.read_bytes()
    magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and link == 1, (hex(magic), link)
    out, at = [], 24
    while at + 16 <= len(data):
        incl = struct.unpack("<IIII", data[at:at + 16])[2]
        frame = data[at + 16:at + 16 + incl]
        at += 16 + incl
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 15) * 4
        udp = frame[14 + ihl:]
        sport, dport = struct.unpack(">HH", udp[:4])
        out.append((socket.inet_ntoa(frame[26:30]), sport, dport, udp[8:]))
    return out


def test_hep_read_by_sngrep(server_factory, tmp_path):
    """sngrep (Debian's 1.6) listening for HEP with `sngrep -N -L udp:HOST:PORT -O FILE`
    counts the call as a dialog and writes its messages to a pcap file. With -L and no -d
    it opens no network device, so what the file holds came over HEP: every hop of the
    call, read back from the file (sngrep writes it out as it exits)."""
    hep_port = free_port()
    s = server_factory(extra=["--hep", f"udp:127.0.0.1:{hep_port}"]).start()
    alice, bob = phones(s, "alice", "bob")
    call_id = "hep-" + rand(12)
    out, pcap = tmp_path / "sngrep.out", tmp_path / "call.pcap"
    with open(out, "wb") as f:
        sn = subprocess.Popen(["sngrep", "-N", "-L", f"udp:127.0.0.1:{hep_port}", "-O", str(pcap)],
                              stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                              env=dict(os.environ, TERM="xterm"))
    try:
        # sngrep binds its HEP port within a moment, then prints its count; copies sent
        # before that would be lost.
        def count():
            txt = out.read_bytes().decode("utf-8", "replace")
            m = re.findall(r"Dialog count: (\d+)", txt)
            return int(m[-1]) if m else None
        deadline = time.time() + 10
        while count() is None and time.time() < deadline and sn.poll() is None:
            time.sleep(0.1)
        assert count() == 0, out.read_bytes()
        from sipua import Call, is_req
        c = Call(alice, "sip:bob@a.test", call_id=call_id)
        assert c.start() is None
        inv = bob.recv(5, is_req("INVITE"))
        assert inv is not None
        answer_and_caller_hangs_up(s, alice, bob, c, inv)
        deadline = time.time() + 10
        while count() != 1 and time.time() < deadline:
            time.sleep(0.1)
        assert count() == 1, out.read_bytes()[-500:]
    finally:
        sn.send_signal(signal.SIGTERM)
        try:
            sn.wait(5)
        except subprocess.TimeoutExpired:
            sn.kill()
            sn.wait()
    assert sn.returncode == 0, out.read_bytes()[-500:]
    packets = pcap_udp_packets(pcap)
    mine = [(sp, dp, pl.decode("utf-8", "replace")) for src, sp, dp, pl in packets
            if src == "127.0.0.1" and f"Call-ID: {call_id}".encode() in pl]
    check_call_copies([(sp, dp, pl.split("\r\n", 1)[0]) for sp, dp, pl in mine], s, alice, bob)


def test_capture_settings_are_checked_and_shown(tmp_path):
    db = str(tmp_path / "p.db")
    for flag, value in (("--hep", "tcp:127.0.0.1:9060"), ("--hep", "udp:nohost:9060"),
                        ("--capture-memory", "lots"), ("--capture-memory", "3T")):
        r = subprocess.run([BIN, "serve", "--db", db, "--listen", f"udp:127.0.0.1:{free_port()}", flag, value],
                           capture_output=True, text=True, timeout=QUICK)
        assert r.returncode == 2, (flag, value, r.stderr)
        assert f"{flag} {value}" in r.stderr, r.stderr
    conf = tmp_path / "p.conf"
    conf.write_text("[capture]\nmemory = 64MB\nhep = udp:127.0.0.1:9060\nhep-id = 7\n")
    r = parley("check", "--config", str(conf), db=db)
    assert r.returncode == 0, r.stderr
    sec = r.stdout.split("[capture]", 1)[1]
    assert "memory = 64MB" in sec and "hep = udp:127.0.0.1:9060" in sec and "hep-id = 7" in sec, r.stdout
    conf.write_text("[capture]\nhep = udp:127.0.0.1\n")
    r = parley("check", "--config", str(conf), db=db)
    assert r.returncode == 2 and "--hep udp:127.0.0.1" in r.stderr, r.stderr


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return int(m.group(1))


def test_capture_figures_in_metrics(server_factory):
    from test_metrics import http, tcp_ports
    # A HEP collector that is not there: every copy is refused (ICMP port unreachable).
    gone = free_port()
    port, = tcp_ports(1)
    s = server_factory(extra=["--http", f"127.0.0.1:{port}", "--capture-memory", "16K", "--hep",
                              f"udp:127.0.0.1:{gone}"]).start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    ua = s.ua()
    # OPTIONS pings (and REGISTERs) go to listeners and HEP, not into the ring.
    for i in range(5):
        ua.send_raw(ua.build("OPTIONS", f"sip:{s.listen[4:]}", contact=False, call_id=f"o-{i}"))
        assert ua.final(timeout=5).status == 200
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    assert metric(text, "parley_capture_messages_total") >= 10
    assert metric(text, "parley_capture_kept_total") == 0
    # Requests of calls (an INFO outside any dialog: answered, not kept from the ring).
    for i in range(60):
        ua.send_raw(ua.build("INFO", f"sip:{s.listen[4:]}", contact=False, call_id=f"m-{i}",
                             headers=["X-Pad: " + "y" * 800]))
        assert ua.final(timeout=5) is not None
    ua.close()
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    assert metric(text, "parley_capture_messages_total") >= 130
    assert metric(text, "parley_capture_kept_total") >= 120
    assert metric(text, "parley_capture_ring_size_bytes") == 16384
    assert 0 < metric(text, "parley_capture_ring_bytes") <= 16384
    assert metric(text, "parley_capture_calls_evicted_total") > 40
    assert 0 < metric(text, "parley_capture_calls") < 20
    assert metric(text, "parley_capture_listeners") == 0
    sent = int(re.search(r'^parley_hep_packets_total\{result="sent"\} (\d+)$', text, re.M).group(1))
    failed = int(re.search(r'^parley_hep_packets_total\{result="failed"\} (\d+)$', text, re.M).group(1))
    assert sent + failed >= 120 and failed > 0
    # Logged once per burst, not once per packet.
    log = s.read_log()
    assert 1 <= log.count("cannot send a HEP packet") <= 3, log[-3000:]


def test_capture_off_keeps_nothing(server_factory):
    from test_metrics import http, tcp_ports
    port, = tcp_ports(1)
    s = server_factory(extra=["--http", f"127.0.0.1:{port}", "--capture-memory", "0"]).start()
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    ua = s.ua()
    ua.send_raw(ua.build("OPTIONS", f"sip:{s.listen[4:]}", contact=False))
    assert ua.final(timeout=5).status == 200
    ua.close()
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    assert metric(text, "parley_capture_messages_total") == 0
    assert metric(text, "parley_capture_ring_size_bytes") == 0
