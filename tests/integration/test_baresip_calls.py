"""test_baresip_calls.py: two real softphones registered with passwords call each other
through Parley: answered with audio checked in the callee's recording, busy, cancelled;
`parley calls` records each with its result."""
import pytest

from baresip import Baresip, answered_call_with_tone
from conftest import call_records, wait_for


@pytest.fixture
def phones(server, tmp_path):
    server.user_add("alice@a.test", "alicepw")
    server.user_add("bob@a.test", "bobpw")
    alice = Baresip(tmp_path, "alice", "alice", "a.test", "alicepw", server.port, tone_hz=1000).start()
    bob = Baresip(tmp_path, "bob", "bob", "a.test", "bobpw", server.port, tone_hz=400).start()
    try:
        alice.wait_registered()
        bob.wait_registered()
        yield alice, bob
    finally:
        alice.stop()
        bob.stop()


def test_call_answered_with_audio(server, phones):
    alice, bob = phones
    answered_call_with_tone(alice, bob, lambda: call_records(server))
    assert "alice@a.test -> bob@a.test" in server.read_log()


def test_call_rejected_busy(server, phones):
    alice, bob = phones
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    bob.command("hangup")  # baresip rejects a ringing call with 486
    alice.wait_event("CALL_CLOSED")
    row = wait_for(lambda: [l for l in call_records(server).splitlines() if "486" in l], 15)
    assert row, call_records(server)
    assert "busy" in server.read_log()


def test_call_cancelled_while_ringing(server, phones):
    alice, bob = phones
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    alice.wait_event("CALL_RINGING")
    alice.command("hangup")  # CANCEL
    bob.wait_event("CALL_CLOSED")
    row = wait_for(lambda: [l for l in call_records(server).splitlines() if "487" in l], 15)
    assert row, call_records(server)
    assert "cancelled" in server.read_log()
