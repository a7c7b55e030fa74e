"""test_store_lock.py: one server per database (a second `parley serve` is refused, naming
the PID), the CLI beside a running server, and `parley ban list` / `parley ban del`."""
import os
import sqlite3
import subprocess
import time

from conftest import BIN, parley
from sipua import free_port


def test_second_serve_refused(server_factory):
    first = server_factory().start()
    port = free_port()
    r = subprocess.run([BIN, "serve", "--listen", f"udp:127.0.0.1:{port}", "--db", first.db,
                        "--domain", "a.test"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert (f"parley: database {first.db} is in use by parley serve (PID {first.proc.pid})"
            in r.stderr), r.stderr
    # The first one still serves, and the short commands work beside it.
    first.wait_ready()
    assert parley("user", "add", "alice@a.test", "--password", "pw", db=first.db).returncode == 0
    assert parley("reg", "list", db=first.db).returncode == 0
    assert parley("calls", db=first.db).returncode == 0
    assert parley("ban", "list", db=first.db).returncode == 0
    assert parley("user", "del", "alice@a.test", db=first.db).returncode == 0


def test_serve_again_after_stop_and_crash(server_factory):
    s = server_factory().start()
    assert s.stop() == 0
    # The lock file stays behind but holds nothing: a new server starts.
    assert os.path.exists(s.db + ".lock")
    s.start()
    assert s.stop(sig=9) == -9
    # A crash releases the lock with the process.
    s.start()


def _db_with_bans(tmp_path):
    db = str(tmp_path / "bans.db")
    # Any writing command creates the database with its schema.
    assert parley("user", "add", "x@a.test", "--password", "y", db=db).returncode == 0
    now = int(time.time())
    con = sqlite3.connect(db)
    con.execute("INSERT INTO bans(source, until, reason, created) VALUES(?, ?, ?, ?)",
                ("192.0.2.7", now + 900, "12 failed authentications in 60 s", now))
    con.execute("INSERT INTO bans(source, until, reason, created) VALUES(?, ?, ?, ?)",
                ("2001:db8::1", now + 2 * 86400, "", now))
    con.execute("INSERT INTO bans(source, until, reason, created) VALUES(?, ?, ?, ?)",
                ("192.0.2.99", now - 10, "ended", now - 1000))
    con.commit()
    con.close()
    return db, now


def test_ban_list(tmp_path):
    db, now = _db_with_bans(tmp_path)
    r = parley("ban", "list", db=db)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "UNTIL", "REMAINING", "REASON"]
    rows = {l.split()[0]: l for l in lines[1:]}
    assert set(rows) == {"192.0.2.7", "2001:db8::1"}   # the ended ban is not shown
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now + 900))
    assert until in rows["192.0.2.7"]
    assert "12 failed authentications in 60 s" in rows["192.0.2.7"]
    assert ("15m 00s" in rows["192.0.2.7"] or "14m 5" in rows["192.0.2.7"]), rows["192.0.2.7"]
    assert "2d 00h" in rows["2001:db8::1"] or "1d 23h" in rows["2001:db8::1"]


def test_ban_del(tmp_path):
    db, _ = _db_with_bans(tmp_path)
    r = parley("ban", "del", "192.0.2.7", db=db)
    assert r.returncode == 0, r.stderr
    r = parley("ban", "list", db=db)
    assert "192.0.2.7 " not in r.stdout and "2001:db8::1" in r.stdout
    r = parley("ban", "del", "192.0.2.7", db=db)
    assert r.returncode == 1
    assert "no ban of 192.0.2.7" in r.stderr
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM bans WHERE source = '192.0.2.7'").fetchone()[0] == 0
    con.close()


def test_ban_del_beside_running_server(server_factory):
    s = server_factory().start()
    now = int(time.time())
    con = sqlite3.connect(s.db, timeout=5)
    con.execute("INSERT INTO bans(source, until, reason, created) VALUES('192.0.2.8', ?, 'r', ?)",
                (now + 60, now))
    con.commit()
    con.close()
    assert "192.0.2.8" in parley("ban", "list", db=s.db).stdout
    assert parley("ban", "del", "192.0.2.8", db=s.db).returncode == 0
    assert "192.0.2.8" not in parley("ban", "list", db=s.db).stdout


def test_ban_usage():
    assert parley("ban").returncode == 2
    assert parley("ban", "del").returncode == 2
    r = parley("help", "ban")
    assert r.returncode == 0 and "ban del SOURCE" in r.stdout


def _wait_for(pred, timeout=10.0, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_kill9_while_database_locked_keeps_the_journal(server_factory):
    """While another process holds the database, a registration is still answered; after
    about a second it is in the journal, so a kill -9 loses it not, and the next start
    applies the journal and removes it."""
    s = server_factory().start()
    s.user_add("alice@a.test", "secret")
    con = sqlite3.connect(s.db, timeout=5, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    ua = s.ua("alice", "secret")
    try:
        assert ua.register(expires=600).status == 200
        assert _wait_for(lambda: "saved in journal" in s.read_log(), 10), s.read_log()[-2000:]
        assert os.path.getsize(s.db + ".journal") > 0
        assert s.stop(sig=9) == -9
    finally:
        con.execute("ROLLBACK")
        con.close()
    s.start()
    assert "1 bindings loaded" in s.read_log()
    assert not os.path.exists(s.db + ".journal")
    assert "alice@a.test" in parley("reg", "list", db=s.db).stdout
    ua.close()


def test_locked_database_at_stop_goes_to_the_journal(server_factory):
    """A stop whose final flush cannot write keeps the changes in the journal."""
    s = server_factory().start()
    s.user_add("alice@a.test", "secret")
    con = sqlite3.connect(s.db, timeout=5, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    ua = s.ua("alice", "secret")
    try:
        assert ua.register(expires=600).status == 200
        assert s.stop() == 0
        assert "saved in journal" in s.read_log()
    finally:
        con.execute("ROLLBACK")
        con.close()
    s.start()
    assert "1 bindings loaded" in s.read_log().split("stopping on SIGTERM")[-1]
    ua.close()
