"""test_baresip_calls.py: two real softphones registered with passwords call each other
through Parley: answered with audio checked in the callee's recording, busy, cancelled;
`parley calls` records each with its result."""
import time

import pytest

from baresip import Baresip, dominant_hz
from conftest import parley, wait_for


def call_records(server):
    """What `parley calls` lists now."""
    return parley("calls", db=server.db).stdout


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
    alice.command("dial", "sip:bob@a.test")
    bob.wait_event("CALL_INCOMING")
    alice.wait_event("CALL_RINGING")
    bob.command("accept")
    bob.wait_event("CALL_ESTABLISHED")
    alice.wait_event("CALL_ESTABLISHED")
    time.sleep(3)  # talk time: the tone flows phone to phone
    alice.command("hangup")
    bob.wait_event("CALL_CLOSED")
    alice.wait_event("CALL_CLOSED")
    recs = wait_for(lambda: bob.recordings("dec"), 15)
    assert recs, "bob recorded nothing"
    hz, secs = dominant_hz(recs[-1])
    assert secs >= 1.0, f"recording too short: {secs}"
    assert 900 <= hz <= 1100, f"bob heard {hz} Hz, not alice's 1 kHz tone"
    log = server.read_log()
    assert "alice@a.test -> bob@a.test" in log
    row = wait_for(lambda: [l for l in call_records(server).splitlines() if "alice@a.test" in l and "200" in l], 15)
    assert row, call_records(server)


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
