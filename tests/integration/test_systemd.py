"""test_systemd.py: serve speaks systemd's notify protocol (Type=notify): READY=1 once it
listens, WATCHDOG=1 from the event loop when WATCHDOG_USEC asks for it, RELOADING=1 then
READY=1 around SIGHUP, STOPPING=1. A Python datagram socket plays systemd."""
import socket
import time

from conftest import wait_log


def _notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


def _collect(sock, want, timeout=10.0):
    """Reads notify messages until one holds the line want; returns all read."""
    got = []
    end = time.time() + timeout
    while time.time() < end:
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            continue
        got.append(msg)
        if want in msg.split("\n"):
            return got
    raise AssertionError(f"no {want} among {got}")


def test_ready_watchdog_reload_stop(server_factory, tmp_path, monkeypatch):
    sock, path = _notify_socket(tmp_path)
    conf = tmp_path / "parley.conf"
    conf.write_text("[server]\ndomain = a.test\n")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # a beat every 150 ms
    s = server_factory(domains=(), extra=["--config", str(conf)])
    s.start(wait=False)
    try:
        got = _collect(sock, "READY=1")
        assert "STATUS=serving" in got[-1]
        s.wait_ready()  # READY=1 came once it listens: it answers
        # Several beats, so that they come from a timer that keeps going.
        for _ in range(3):
            _collect(sock, "WATCHDOG=1")
        s.proc.send_signal(1)
        got = _collect(sock, "RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in got[-1].split("\n")), got
        _collect(sock, "READY=1")
        wait_log(s, "reloaded: 0 settings changed")
        s.proc.send_signal(15)
        _collect(sock, "STOPPING=1")
    finally:
        sock.close()


def test_no_watchdog_without_watchdog_usec(server_factory, tmp_path, monkeypatch):
    sock, path = _notify_socket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    s = server_factory()
    s.start(wait=False)
    try:
        _collect(sock, "READY=1")
        s.wait_ready()
        sock.settimeout(1.0)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            msg = ""
        assert "WATCHDOG=1" not in msg
    finally:
        sock.close()
