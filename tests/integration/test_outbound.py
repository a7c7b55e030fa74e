"""test_outbound.py: SIP Outbound (RFC 5626) flows over TCP and their failover, Flow-Timer,
STUN keepalives on the UDP port, Path (RFC 3327) across a restart, GRUU (RFC 5627) and
received= with rport (RFC 3581), against the real parley binary on loopback."""
import re
import socket
import struct
import uuid

import pytest

from conftest import add_users, parley, stream_server, wait_for, wait_log
from sippctl import run_sipp
from sipua import SDP, UA, Call, callee_answer, callee_hangs_up, is_req, rand, uri_of
from tcpua import TcpUA


def tcp_server(server_factory, *extra, host="127.0.0.1"):
    return stream_server(server_factory, "tcp", *extra, host=host)


@pytest.fixture
def srv(server_factory):
    s = tcp_server(server_factory)
    add_users(s, "alice", "bob")
    return s


def instance():
    return f"<urn:uuid:{uuid.uuid4()}>"


def flow(server, inst, reg_id, contact_host=None, user="alice", supported="outbound"):
    """A TCP connection of phone inst registering its flow reg_id; returns (ua, 200)."""
    ua = TcpUA(server.addr, user=user, domain=server.domains[0], password="pw", host=server.host)
    host = contact_host or ua.hostport
    contact = f'<sip:{user}@{host};transport=tcp;ob>;+sip.instance="{inst}";reg-id={reg_id}'
    hdrs = [f"Supported: {supported}"] if supported else []
    r = ua.register(contact=contact, headers=hdrs)
    assert r is not None and r.status == 200, r
    return ua, r


def contacts(resp):
    return [c for v in resp.all("contact") for c in v.split(",")] if resp.all("contact") else []


def invite_reaches(caller, target, phones, timeout=5):
    """caller calls target (answering the proxy's challenge); returns the call, the index of
    the phone that got the INVITE (None if none) and that INVITE, after checking that no
    other phone got it too."""
    c = Call(caller, target)
    assert c.start() is None
    got = None

    def mine(m):  # not a retransmission of an earlier call's INVITE
        return is_req("INVITE")(m) and m.get("call-id") == c.call_id
    for i, p in enumerate(phones):
        m = p.recv(timeout=timeout if got is None else 0.5, want=mine)
        if m is not None:
            assert got is None, "the INVITE reached two flows of one phone"
            got = (i, m)
    return (c,) + (got if got else (None, None))


def test_two_flows_one_binding_each_and_flow_timer(srv):
    inst = instance()
    a1, r1 = flow(srv, inst, 1)
    assert r1.get("require") == "outbound"
    assert r1.get("flow-timer") == "120"  # a stream: README "Outbound"
    # The same contact URI for both flows: still two bindings (one per reg-id).
    a2, r2 = flow(srv, inst, 2, contact_host=a1.hostport)
    assert len(contacts(r2)) == 2, r2
    # The first flow comes back over a new connection: it replaces only itself.
    a1.close()
    a3, r3 = flow(srv, inst, 1)
    assert len(contacts(r3)) == 2, r3
    out = wait_for(lambda: (o := parley("reg", "list", db=srv.db).stdout).count("alice@a.test") == 2 and o)
    assert out, parley("reg", "list", db=srv.db).stdout
    head, *rows = out.splitlines()
    assert head.split() == ["AOR", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES", "CONNECTION", "INSTANCE", "REG-ID"]
    cols = sorted(((r.split()[5], r.split()[6], r.split()[7]) for r in rows if "alice@a.test" in r), key=lambda c: c[2])
    assert [c[1:] for c in cols] == [(inst, "1"), (inst, "2")], out
    assert all(re.fullmatch(r"[0-9a-f]+", c[0]) for c in cols) and cols[0][0] != cols[1][0], out
    for ua in (a2, a3):
        ua.close()


def test_no_outbound_without_supported(srv):
    inst = instance()
    a1, r1 = flow(srv, inst, 1, supported=None)
    assert r1.get("require") is None and r1.get("flow-timer") is None
    # Same URI, another reg-id, no outbound: the contact is the key, one binding.
    a2, r2 = flow(srv, inst, 2, contact_host=a1.hostport, supported=None)
    assert len(contacts(r2)) == 1, r2
    a1.close()
    a2.close()


def two_flows_called(srv):
    """alice's phone registers two flows (reg-id 1 and 2), bob registers and calls alice:
    returns both flows, bob, the call, which flow got the INVITE and the INVITE."""
    inst = instance()
    a1, _ = flow(srv, inst, 1)
    a2, _ = flow(srv, inst, 2)
    bob = srv.ua("bob", "pw")
    assert bob.register().status == 200
    c, i, inv = invite_reaches(bob, "sip:alice@a.test", [a1, a2])
    return a1, a2, bob, c, i, inv


def test_call_reaches_one_flow_and_the_next_when_the_first_is_gone(srv):
    a1, a2, bob, c, i, inv = two_flows_called(srv)
    assert i == 0, "the first flow gets the call, the second does not"
    a1.reply(inv, 486, "Busy Here", to_tag="t1")
    assert c.final().status == 486
    # The first flow's connection goes: the next call takes the second flow at once.
    a1.close()
    wait_log(srv, "closed")
    c, i, inv = invite_reaches(bob, "sip:alice@a.test", [a2])
    assert i == 0
    a2.reply(inv, 486, "Busy Here", to_tag="t2")
    assert c.final().status == 486
    a2.close()
    bob.close()


def test_flow_lost_while_ringing_fails_over(srv):
    a1, a2, bob, c, i, inv = two_flows_called(srv)
    assert i == 0
    # The INVITE is on the first flow, unanswered, when its connection drops: the
    # transport tells the transaction at once and the phone's second flow gets it.
    a1.sock.s.shutdown(socket.SHUT_RDWR)
    a1.close()
    inv2 = a2.recv(timeout=5, want=is_req("INVITE"))
    assert inv2 is not None, srv.read_log()[-3000:]
    assert inv2.get("call-id") == inv.get("call-id")
    a2.reply(inv2, 486, "Busy Here", to_tag="t3")
    assert c.final().status == 486
    assert "next flow" in srv.read_log()
    a2.close()
    bob.close()


def test_first_hop_without_outbound_gets_439(srv):
    ua = UA(srv.addr, user="alice", domain="a.test", password="pw", host=srv.host)
    edge = f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{rand(8)}"
    r = ua.register(contact=f'<sip:alice@{ua.hostport};ob>;+sip.instance="{instance()}";reg-id=1',
                    headers=["Supported: outbound", edge])
    assert r.status == 439, r
    ua.close()


def stun_request(tid, attrs=b""):
    return struct.pack("!HHI", 0x0001, len(attrs), 0x2112A442) + tid + attrs


def xor_mapped(resp, tid):
    """The (host, port) of the XOR-MAPPED-ADDRESS of a Binding Success Response."""
    typ, length, cookie = struct.unpack("!HHI", resp[:8])
    assert typ == 0x0101 and cookie == 0x2112A442 and resp[8:20] == tid and length == len(resp) - 20
    at = 20
    while at < len(resp):
        t, ln = struct.unpack("!HH", resp[at:at + 4])
        v = resp[at + 4:at + 4 + ln]
        if t == 0x0020:
            fam, port = v[1], struct.unpack("!H", v[2:4])[0] ^ 0x2112
            key = struct.pack("!I", 0x2112A442) + tid
            raw = bytes(b ^ k for b, k in zip(v[4:], key))
            host = socket.inet_ntop(socket.AF_INET if fam == 1 else socket.AF_INET6, raw)
            return host, port
        at += 4 + (ln + 3) // 4 * 4
    raise AssertionError("no XOR-MAPPED-ADDRESS")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_stun_keepalive_answered(server_factory, host):
    from test_metrics import http, tcp_ports
    port, = tcp_ports(1)
    s = tcp_server(server_factory, "--http", f"127.0.0.1:{port}", host=host)
    wait_log(s, f"HTTP endpoint on 127.0.0.1:{port}")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    tid = rand(12).encode()
    sock.sendto(stun_request(tid), s.addr)
    resp, _ = sock.recvfrom(2048)
    assert xor_mapped(resp, tid) == sock.getsockname()[:2]
    # Malformed STUN (a bad length) is dropped: no answer, and SIP still works after it.
    sock.sendto(stun_request(tid)[:-1] + b"\0\0\0\0\0", s.addr)
    sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sock.recvfrom(2048)
    sock.close()
    s.wait_ready()
    assert "malformed STUN" in s.read_log()
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    assert "parley_stun_keepalives_total 1\n" in text, text
    assert 'parley_stun_dropped_total{reason="malformed"} 1\n' in text, text
    assert 'parley_stun_dropped_total{reason="refused"} 0\n' in text, text


class EdgeUA(UA):
    """A UDP endpoint that stands for an edge proxy: its Via asks for no rport, so that the
    registrar has no reason of its own to reach it but the Path."""

    def build(self, *a, **kw):
        return super().build(*a, **kw).replace(b";rport\r\n", b"\r\n", 1)


def test_path_kept_across_restart_and_used_as_route(server_factory):
    s = server_factory().start()
    add_users(s, "alice", "bob")
    edge = EdgeUA(s.addr, user="alice", domain="a.test", password="pw", host=s.host)
    path = f"<sip:{edge.hostport};lr>"
    # The phone behind the edge names an address nobody here could reach.
    r = edge.register(contact="<sip:alice@192.0.2.55:5070>", headers=[f"Path: {path}", "Supported: path"])
    assert r.status == 200, r
    assert r.get("path") == path, r
    wait_for(lambda: "192.0.2.55" in parley("reg", "list", db=s.db).stdout)
    s.stop()
    s.start()
    bob = s.ua("bob", "pw")
    assert bob.register().status == 200
    c = Call(bob, "sip:alice@a.test")
    assert c.start() is None
    inv = edge.recv(5, is_req("INVITE"))
    assert inv is not None, s.read_log()[-3000:]
    assert inv.start.split()[1] == "sip:alice@192.0.2.55:5070"
    assert inv.all("route") == [path], inv
    edge.reply(inv, 486, "Busy Here", to_tag="e1")
    assert c.final().status == 486
    edge.close()
    bob.close()


def gruus(resp, ua):
    """The (pub-gruu, temp-gruu) given for ua's own contact in a REGISTER 200."""
    for c in contacts(resp):
        if ua.hostport in c:
            pub = re.search(r';pub-gruu="([^"]+)"', c)
            temp = re.search(r';temp-gruu="([^"]+)"', c)
            return pub and pub.group(1), temp and temp.group(1)
    return None, None


def gruu_phone(server, user):
    ua = server.ua(user, "pw")
    inst = instance()
    r = ua.register(contact=f'<sip:{user}@{ua.hostport}>;+sip.instance="{inst}"', headers=["Supported: gruu"])
    assert r is not None and r.status == 200, r
    pub, temp = gruus(r, ua)
    assert pub == f"sip:{user}@a.test;gr={inst[1:-1]}", r
    assert temp and temp.startswith("sip:tgr-") and temp.endswith("@a.test;gr") and user not in temp, r
    return ua, pub, temp


class GruuCall(Call):
    """A call whose caller puts contact (its GRUU) in its Contact, as Linphone and JsSIP do."""

    def __init__(self, ua, target, contact):
        super().__init__(ua, target)
        self.contact = contact

    def _send(self, extra=()):
        self.ua.cseq += 1
        self.cseq = self.ua.cseq
        self.branch = "z9hG4bK" + rand(12)
        self.ua.send_raw(self.ua.build("INVITE", self.target, headers=self.headers + list(extra), body=SDP,
                                       to=self.to, call_id=self.call_id, cseq=self.cseq, branch=self.branch,
                                       contact=f"<{self.contact}>"))


def test_gruu_reaches_only_its_phone_also_in_dialogs(srv):
    a, pub, temp = gruu_phone(srv, "alice")
    b, _, _ = gruu_phone(srv, "alice")  # another phone of the same AOR
    bob = srv.ua("bob", "pw")
    assert bob.register().status == 200
    # The AOR rings both phones; each GRUU only its own.
    for target, who in ((pub, 0), (temp, 0)):
        c, i, inv = invite_reaches(bob, target, [a, b])
        assert i == who, target
        assert inv.start.split()[1] == f"sip:alice@{a.hostport}"
        a.reply(inv, 486, "Busy Here", to_tag="g1")
        r = c.final()
        assert r.status == 486
        c.ack_non2xx(r)
    # Inside a dialog: a calls bob with its temp-gruu as Contact; bob's BYE, sent to that
    # GRUU along the recorded route, reaches phone a and not phone b.
    c = GruuCall(a, "sip:bob@a.test", temp)
    assert c.start() is None
    inv = bob.recv(5, is_req("INVITE"))
    assert inv is not None and uri_of(inv.get("contact")) == temp
    callee_answer(bob, inv, 200, "OK", "bt", body=SDP)
    assert c.final().status == 200
    c.ack()
    bye, r = callee_hangs_up(a, bob, inv, "bt")
    assert bye is not None and r is not None and r.status == 200, srv.read_log()[-3000:]
    assert b.recv(0.5, is_req("BYE")) is None
    # A temp-gruu is sealed: a changed one is no GRUU of ours.
    bad = temp[:8] + ("1" if temp[8] == "0" else "0") + temp[9:]
    carol = srv.ua("bob", "pw")
    c = Call(carol, bad)
    r = c.start() or c.final()
    assert r is not None and r.status == 404
    for ua in (a, b, bob, carol):
        ua.close()


def test_rport_gets_received_even_when_it_equals_sent_by(server):
    ua = UA(server.addr, host=server.host)
    ua.send_raw(ua.build("OPTIONS", f"sip:{server.listen[4:]}", contact=False))
    r = ua.final()
    assert r is not None and r.status == 200
    via = r.get("via")
    assert via.startswith(f"SIP/2.0/UDP {ua.hostport}"), via
    assert f";received={ua.host}" in via and f";rport={ua.port}" in via, via
    ua.close()


def test_sipp_flows_over_tcp(srv, tmp_path):
    """SIPp registers two flows of one phone, each over its own connection (-t tn), and
    checks Require: outbound and Flow-Timer in each 200; both flows are kept."""
    inf = "SEQUENTIAL\nalice;pw;0000000000a1;a.test;1\nalice;pw;0000000000a1;a.test;2\n"
    stats = run_sipp("reg_outbound.xml", f"127.0.0.1:{srv.port}", tmp_path, inf, calls=2, rate=10, limit=1,
                     extra=["-t", "tn", "-max_socket", "100"])
    assert int(stats["SuccessfulCall(C)"]) == 2, stats
    out = wait_for(lambda: (o := parley("reg", "list", db=srv.db).stdout).count("alice@a.test") == 2 and o)
    assert out and out.count("urn:uuid:00000000-0000-1000-8000-0000000000a1") == 2, out


def test_reg_list_connection_gone_after_restart(srv):
    a1, _ = flow(srv, instance(), 1)

    def conn():
        rows = [r.split() for r in parley("reg", "list", db=srv.db).stdout.splitlines() if "alice@a.test" in r]
        return rows[0][5] if rows else None
    assert wait_for(lambda: conn() not in (None, "-", "none")), conn()
    srv.stop()
    srv.start()
    assert wait_for(lambda: conn() == "none"), conn()
    a1.close()


def test_stun_counts_against_the_rate_limit(server_factory):
    """A STUN answer is larger than its request: a flood of them from one source (maybe a
    spoofed one) is held to the per-source rate limit like SIP, and logged the same way;
    another source is still answered."""
    from test_metrics import http, tcp_ports
    port, = tcp_ports(1)
    s = server_factory(extra=["--rate-limit", "20", "--http", f"127.0.0.1:{port}"]).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.8", 0))
    for _ in range(200):
        sock.sendto(stun_request(rand(12).encode()), s.addr)
    sock.settimeout(1.5)
    answered = 0
    try:
        while True:
            sock.recvfrom(2048)
            answered += 1
    except socket.timeout:
        pass
    sock.close()
    assert 0 < answered < 120, answered
    assert wait_for(lambda: "over the rate limit: 127.0.0.8" in s.read_log(), 5)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.9", 0))
    other.settimeout(5)
    tid = rand(12).encode()
    other.sendto(stun_request(tid), s.addr)
    assert xor_mapped(other.recvfrom(2048)[0], tid) == other.getsockname()[:2]
    other.close()
    # What was refused is counted: every request was either answered or refused.
    text = http("GET", f"http://127.0.0.1:{port}/metrics")[2].decode()
    refused = int(re.search(r'^parley_stun_dropped_total\{reason="refused"\} (\d+)$', text, re.M).group(1))
    assert refused == 200 - answered, (refused, answered)
