"""test_backup.py: `parley backup FILE` copies the database while a server under registration
load writes it: the copy opens, passes integrity_check and lists the bindings."""
import os
import sqlite3
import threading

from conftest import parley


def _register_loop(server, users, stop, done):
    """Registers users over and over until stop is set; counts the 200s in done."""
    uas = [server.ua(u, "pw") for u in users]
    try:
        while not stop.is_set():
            for ua in uas:
                r = ua.register()
                if r is not None and r.status == 200:
                    done[0] += 1
    finally:
        for ua in uas:
            ua.close()


def test_backup_under_load(server_factory, tmp_path):
    s = server_factory()
    # Enough users that the copy takes several steps of 256 pages (a few MB).
    imp = tmp_path / "users.csv"
    imp.write_text("".join(f"u{i}@a.test,pw{i}\n" for i in range(12000)))
    r = parley("user", "import", str(imp), db=s.db)
    assert r.returncode == 0, r.stderr
    for u in ("alice", "bob", "carol"):
        s.user_add(f"{u}@a.test", "pw")
    s.start()
    stop = threading.Event()
    # Every binding the copy must hold is registered before the load starts.
    for u in ("alice", "bob", "carol"):
        ua = s.ua(u, "pw")
        assert ua.register().status == 200
        ua.close()
    done = [0]
    t = threading.Thread(target=_register_loop, args=(s, ["alice", "bob", "carol"], stop, done))
    t.start()
    copy = str(tmp_path / "copy.db")
    try:
        # Bindings are written behind (flush every 200 ms): wait until they are on disk.
        for _ in range(50):
            if "carol@a.test" in parley("reg", "list", db=s.db).stdout:
                break
            threading.Event().wait(0.1)
        r = parley("backup", copy, db=s.db)
        assert r.returncode == 0, r.stderr
    finally:
        stop.set()
        t.join()
    assert done[0] > 0
    assert not any(n.startswith("copy.db.partial") for n in os.listdir(tmp_path))
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 12003
    con.close()
    out = parley("reg", "list", db=copy).stdout
    for u in ("alice", "bob", "carol"):
        assert f"{u}@a.test" in out, out
    # The server went on serving throughout, and still does.
    ua = s.ua("alice", "pw")
    assert ua.register().status == 200
    ua.close()
    assert "flush failed" not in s.read_log()


def test_backup_refuses_existing_file(tmp_path):
    db = str(tmp_path / "p.db")
    assert parley("user", "add", "alice@a.test", "--password", "pw", db=db).returncode == 0
    dest = tmp_path / "copy.db"
    dest.write_text("keep me")
    r = parley("backup", str(dest), db=db)
    assert r.returncode == 2
    assert "exists (--force replaces it)" in r.stderr, r.stderr
    assert dest.read_text() == "keep me"
    r = parley("backup", str(dest), "--force", db=db)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(str(dest))
    assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    con.close()


def test_backup_usage_and_missing_db(tmp_path):
    r = parley("backup")
    assert r.returncode == 2 and "expected one FILE" in r.stderr
    r = parley("backup", str(tmp_path / "c.db"), db=str(tmp_path / "none.db"))
    assert r.returncode == 1 and "no database" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "c.db")
