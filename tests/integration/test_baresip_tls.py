"""test_baresip_tls.py: real softphones (baresip) over TLS through Parley, checking Parley's
self-signed certificate (sip_cafile): registered over their connections, an answered call with
the tone checked in the callee's recording, busy, cancelled, and calls bridging UDP and TLS
both ways."""
import pytest

from baresip import answered_call_with_tone
from conftest import call_records, parley, wait_for
from test_baresip_tcp import busy_call, cancelled_call, pair as tcp_pair
from test_tls import cert_of, tls_server


@pytest.fixture
def tsrv(server_factory):
    s = tls_server(server_factory)
    s.user_add("alice@a.test", "alicepw")
    s.user_add("bob@a.test", "bobpw")
    return s


def pair(srv, tmp_path, alice_tp, bob_tp):
    return tcp_pair(srv, tmp_path, alice_tp, bob_tp, cafile=cert_of(srv))


@pytest.fixture
def tls_phones(tsrv, tmp_path):
    alice, bob = pair(tsrv, tmp_path, "tls", "tls")
    try:
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def test_registered_over_tls(tsrv, tls_phones):
    out = wait_for(lambda: (o := parley("reg", "list", db=tsrv.db).stdout).count(" TLS") >= 2 and o, 10)
    assert out, parley("reg", "list", db=tsrv.db).stdout
    log = tsrv.read_log()
    assert "bytes over TLS: REGISTER" in log and "TLS established" in log


def test_tls_call_answered_with_audio(tsrv, tls_phones):
    alice, bob = tls_phones
    answered_call_with_tone(alice, bob, lambda: call_records(tsrv))
    assert "bytes over TLS: INVITE sip:bob@" in tsrv.read_log()


def test_tls_call_rejected_busy(tsrv, tls_phones):
    busy_call(tsrv, *tls_phones)


def test_tls_call_cancelled_while_ringing(tsrv, tls_phones):
    cancelled_call(tsrv, *tls_phones)


@pytest.mark.parametrize("alice_tp,bob_tp", [("udp", "tls"), ("tls", "udp")])
def test_mixed_call_udp_tls(tsrv, tmp_path, alice_tp, bob_tp):
    alice, bob = pair(tsrv, tmp_path, alice_tp, bob_tp)
    try:
        answered_call_with_tone(alice, bob, lambda: call_records(tsrv))
    finally:
        alice.stop()
        bob.stop()
