"""test_baresip_register.py: a real softphone registers with a password and unregisters on exit."""
import time

from baresip import Baresip
from conftest import parley


def bindings(server):
    return parley("reg", "list", db=server.db).stdout


def test_baresip_registers_and_unregisters(server, tmp_path):
    server.user_add("alice@a.test", "alicepw")
    phone = Baresip(tmp_path, "alice", "alice", "a.test", "alicepw", server.port).start()
    try:
        phone.wait_registered()
        log = server.read_log()
        assert "registered alice@a.test" in log
        end = time.time() + 10
        while "alice@a.test" not in bindings(server) and time.time() < end:
            time.sleep(0.1)
        assert f"127.0.0.1:{phone.sip_port}" in bindings(server)
    finally:
        phone.stop()
    end = time.time() + 10
    while "unregistered alice@a.test" not in server.read_log() and time.time() < end:
        time.sleep(0.1)
    assert "unregistered alice@a.test" in server.read_log()
    end = time.time() + 10
    while "alice@a.test" in bindings(server) and time.time() < end:
        time.sleep(0.1)
    assert "alice@a.test" not in bindings(server)
