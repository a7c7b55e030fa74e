"""test_cli.py: `parley user import` (checked lines, all or nothing, --update, --skip-bad)
and `parley check` refusing what `serve` refuses, against the real binary."""
import os
import sqlite3
import subprocess

import pytest

from conftest import BIN, parley
from sipua import free_port

# A hang (reading /dev/zero, waiting on a FIFO) must fail the test, not stall the run.
QUICK = 10


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=QUICK)


def users(db):
    r = parley("user", "list", db=db)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def registers(server, user, password):
    ua = server.ua(user, password)
    try:
        r = ua.register(expires=60)
        return r.status if r is not None else None
    finally:
        ua.close()


def test_import_bom_crlf_comments_and_commas_in_password(server_factory, tmp_path):
    s = server_factory()
    f = tmp_path / "users.csv"
    f.write_bytes(b"\xef\xbb\xbfalice@a.test,pw,with,commas\r\n"
                  b"\r\n"
                  b"# a comment, with a comma\r\n"
                  b"   \r\n"
                  b"bob@A.TEST,bob pw\r\n")
    r = parley("user", "import", str(f), db=s.db)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "imported 2 users\n"
    assert r.stderr == ""
    assert users(s.db) == ["alice@a.test", "bob@a.test"]
    s.start()
    # The BOM is not part of the user, the password is all after the first comma, and the
    # CR of the line end is not part of it.
    assert registers(s, "alice", "pw,with,commas") == 200
    assert registers(s, "bob", "bob pw") == 200


BAD = [
    ("nocomma@a.test", "no comma"),
    ("no-at-sign,pw", "no '@'"),
    ("@a.test,pw", "empty user part"),
    ("bad user@a.test,pw", "not allowed in a SIP user name"),
    ("carol%zz@a.test,pw", "must start an escape"),
    ("dave@,pw", "empty domain"),
    ("erin@bad_host!,pw", "is not a host name or IP address"),
    ("frank@10.0.0.300,pw", "is not a host name or IP address"),
    ("grace@a.test,", "empty password"),
    ("alice@A.test,again", "given twice (first on line 1)"),
]


def bad_file(tmp_path):
    """Two good lines (1 and 2) and then every kind of bad line, one per line from 3 on."""
    f = tmp_path / "bad.csv"
    f.write_text("alice@a.test,alicepw\nh%40x@192.0.2.1,hpw\n" + "".join(l + "\n" for l, _ in BAD))
    return f


def test_import_bad_lines_import_nothing(server_factory, tmp_path):
    s = server_factory()
    s.user_add("zed@a.test", "zedpw")
    f = bad_file(tmp_path)
    r = parley("user", "import", str(f), db=s.db)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    for n, (_, why) in enumerate(BAD, start=3):
        mine = [l for l in lines if l.startswith(f"{f}:{n}: ")]
        assert len(mine) == 1 and why in mine[0], (n, why, r.stderr)
    assert not any(l.startswith(f"{f}:1:") or l.startswith(f"{f}:2:") for l in lines)
    assert f"{len(BAD)} bad lines in {f}; nothing imported" in r.stderr
    assert "--skip-bad" in r.stderr
    assert "alicepw" not in r.stderr and "hpw" not in r.stderr     # passwords are never shown
    assert users(s.db) == ["zed@a.test"]


def test_import_skip_bad(server_factory, tmp_path):
    s = server_factory()
    f = bad_file(tmp_path)
    r = parley("user", "import", str(f), "--skip-bad", db=s.db)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"imported 2 users, skipped {len(BAD)} bad lines\n"
    assert sum(1 for l in r.stderr.splitlines() if l.startswith(f"{f}:")) == len(BAD)
    assert sorted(users(s.db)) == ["alice@a.test", "h%40x@192.0.2.1"]


def test_import_existing_user_needs_update(server_factory, tmp_path):
    s = server_factory()
    s.user_add("alice@a.test", "oldpw")
    f = tmp_path / "users.csv"
    f.write_text("alice@a.test,newpw\nbob@a.test,bobpw\n")
    r = parley("user", "import", str(f), db=s.db)
    assert r.returncode == 2
    assert f"{f}:1: user alice@a.test exists; use --update to change its password" in r.stderr
    assert users(s.db) == ["alice@a.test"]          # not even bob: all or nothing

    r = parley("user", "import", str(f), "--update", db=s.db)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "imported 2 users (1 new, 1 with a changed password)\n"
    assert users(s.db) == ["alice@a.test", "bob@a.test"]
    s.start()
    assert registers(s, "alice", "newpw") == 200
    assert registers(s, "alice", "oldpw") == 403
    assert registers(s, "bob", "bobpw") == 200


def test_import_locked_database_is_a_runtime_failure(tmp_path):
    db = str(tmp_path / "p.db")
    assert parley("user", "add", "alice@a.test", "--password", "pw", db=db).returncode == 0
    f = tmp_path / "users.csv"
    f.write_text("bob@a.test,bobpw\n")
    holder = sqlite3.connect(db, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = parley("user", "import", str(f), db=db)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"database {db} is locked by another process" in r.stderr, r.stderr
    assert users(db) == ["alice@a.test"]


def test_import_refuses_what_is_not_a_file(tmp_path):
    db = str(tmp_path / "p.db")
    for path in ("/dev/zero", str(tmp_path), str(tmp_path / "missing.csv")):
        r = run("user", "import", path, "--db", db)
        assert r.returncode == 2 and path in r.stderr, r.stderr
    r = run("user", "list", "--update", "--db", db)
    assert r.returncode == 2 and "--update: only for user import" in r.stderr


# Configs that `serve` refuses; `check` must refuse each of them too, with exit code 2.
BAD_CONFIGS = {
    "md5_twice": ("[server]\nauth-algorithms = md5,md5\n", "'md5' is given twice"),
    "empty_db": ("[store]\ndb =\n", ":2: db: empty database path"),
    "slow_after_ban": ("[security]\nban-threshold = 5\nslow-after = 5\n", "below ban-threshold"),
    "dns_name": ("[server]\ndns = resolver.test\n", "--dns resolver.test: expected a numeric"),
}


@pytest.fixture
def listen_args(tmp_path):
    return ["--listen", f"udp:127.0.0.1:{free_port()}", "--db", str(tmp_path / "s.db")]


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("cmd", ["check", "serve"])
def test_bad_config_refused(tmp_path, listen_args, cmd, name):
    text, want = BAD_CONFIGS[name]
    cfg = tmp_path / "bad.ini"
    cfg.write_text(text)
    args = [cmd, "--config", str(cfg)] + (listen_args if cmd == "serve" and name != "empty_db" else [])
    r = run(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert want in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", ["check", "serve", "user"])
def test_config_that_is_not_a_regular_file(tmp_path, listen_args, cmd):
    fifo = str(tmp_path / "fifo.ini")
    os.mkfifo(fifo)
    big = tmp_path / "big.ini"
    big.write_text(";\n" * (600 * 1024))
    extra = {"check": [], "serve": listen_args, "user": ["list"]}[cmd]
    for path, why in (("/dev/zero", "not a regular file"), (fifo, "not a regular file"),
                      (str(tmp_path), "not a regular file"), (str(big), "too large")):
        r = run(cmd, *extra, "--config", path)
        assert r.returncode == 2, (path, r.stderr)
        assert f"config file {path}: {why}" in r.stderr, r.stderr


def test_config_check_passes_is_one_serve_accepts(server_factory, tmp_path):
    cfg = tmp_path / "good.ini"
    cfg.write_text("[server]\nauth-algorithms = sha-256,md5\n[security]\nnonce-bind-source = true\n"
                   "ban-threshold = 5\nslow-after = 2\n[store]\ncdr-retention = 30\n")
    r = run("check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "auth-algorithms = sha-256,md5" in r.stdout and "nonce-bind-source = true" in r.stdout
    s = server_factory(extra=["--config", str(cfg)]).start()
    assert s.proc.poll() is None
