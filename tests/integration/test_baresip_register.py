"""test_baresip_register.py: a real softphone registers with a password and unregisters on exit."""
from baresip import Baresip
from conftest import parley, wait_for


def bindings(server):
    """What `parley reg list` lists now."""
    return parley("reg", "list", db=server.db).stdout


def test_baresip_registers_and_unregisters(server, tmp_path):
    server.user_add("alice@a.test", "alicepw")
    phone = Baresip(tmp_path, "alice", "alice", "a.test", "alicepw", server.port).start()
    try:
        phone.wait_registered()
        log = server.read_log()
        assert "registered alice@a.test" in log
        wait_for(lambda: "alice@a.test" in bindings(server), 10)
        assert f"127.0.0.1:{phone.sip_port}" in bindings(server)
    finally:
        phone.stop()
    wait_for(lambda: "unregistered alice@a.test" in server.read_log(), 10)
    assert "unregistered alice@a.test" in server.read_log()
    wait_for(lambda: "alice@a.test" not in bindings(server), 10)
    assert "alice@a.test" not in bindings(server)
