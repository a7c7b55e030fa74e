"""test_baresip_tcp.py: real softphones (baresip) over TCP through Parley: registered over
their connections, an answered call with the tone checked in the callee's recording, busy,
cancelled, and calls bridging UDP and TCP both ways."""
import pytest

from baresip import Baresip, answered_call_with_tone
from conftest import call_records, parley, wait_for
from test_tcp import tcp_server


@pytest.fixture
def tsrv(server_factory):
    s = tcp_server(server_factory)
    s.user_add("alice@a.test", "alicepw")
    s.user_add("bob@a.test", "bobpw")
    return s


def pair(srv, tmp_path, alice_tp, bob_tp, cafile=None):
    """alice (1000 Hz tone) and bob (400 Hz) registered over the transports given; cafile: the
    certificate baresip checks a TLS server with."""
    alice = Baresip(tmp_path, "alice", "alice", "a.test", "alicepw", srv.port, tone_hz=1000,
                    transport=alice_tp, cafile=cafile).start()
    bob = Baresip(tmp_path, "bob", "bob", "a.test", "bobpw", srv.port, tone_hz=400, transport=bob_tp,
                  cafile=cafile).start()
    alice.wait_registered()
    bob.wait_registered()
    return alice, bob


@pytest.fixture
def tcp_phones(tsrv, tmp_path):
    alice, bob = pair(tsrv, tmp_path, "tcp", "tcp")
    try:
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def test_registered_over_tcp(tsrv, tcp_phones):
    out = parley("reg", "list", db=tsrv.db).stdout
    out = wait_for(lambda: (o := parley("reg", "list", db=tsrv.db).stdout).count(" TCP") >= 2 and o, 10)
    assert out, parley("reg", "list", db=tsrv.db).stdout
    log = tsrv.read_log()
    assert "bytes over TCP: REGISTER" in log


def test_tcp_call_answered_with_audio(tsrv, tcp_phones):
    alice, bob = tcp_phones
    answered_call_with_tone(alice, bob, lambda: call_records(tsrv))
    assert "bytes over TCP: INVITE sip:bob@" in tsrv.read_log()


def busy_call(srv, alice, bob):
    """alice calls bob, who rejects it while it rings: the call is recorded 486."""
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    bob.command("hangup")  # baresip rejects a ringing call with 486
    alice.wait_event("CALL_CLOSED")
    row = wait_for(lambda: [ln for ln in call_records(srv).splitlines() if "486" in ln], 15)
    assert row, call_records(srv)


def cancelled_call(srv, alice, bob):
    """alice calls bob and hangs up while it rings (CANCEL): the call is recorded 487."""
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    alice.wait_event("CALL_RINGING")
    alice.command("hangup")  # CANCEL
    bob.wait_event("CALL_CLOSED")
    row = wait_for(lambda: [ln for ln in call_records(srv).splitlines() if "487" in ln], 15)
    assert row, call_records(srv)


def test_tcp_call_rejected_busy(tsrv, tcp_phones):
    busy_call(tsrv, *tcp_phones)


def test_tcp_call_cancelled_while_ringing(tsrv, tcp_phones):
    cancelled_call(tsrv, *tcp_phones)


@pytest.mark.parametrize("alice_tp,bob_tp", [("udp", "tcp"), ("tcp", "udp")])
def test_mixed_call_udp_tcp(tsrv, tmp_path, alice_tp, bob_tp):
    alice, bob = pair(tsrv, tmp_path, alice_tp, bob_tp)
    try:
        answered_call_with_tone(alice, bob, lambda: call_records(tsrv))
    finally:
        alice.stop()
        bob.stop()
