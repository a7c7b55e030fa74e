"""test_install.py: `make install DESTDIR=... PREFIX=/usr` puts the binary, the systemd unit,
the sysusers.d entry, the man pages and an example config in place; the man pages render
without a groff warning; an existing config is kept."""
import os
import subprocess

from conftest import ROOT


def _install(dest):
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_make_install(tmp_path):
    dest = str(tmp_path / "root")
    _install(dest)
    binary = os.path.join(dest, "usr/bin/parley")
    assert os.access(binary, os.X_OK)
    r = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("parley "), r
    unit = open(os.path.join(dest, "usr/lib/systemd/system/parley.service")).read()
    assert "@" not in unit, "a placeholder was left in the unit"
    assert "ExecStart=/usr/bin/parley serve --config /etc/parley/parley.conf" in unit
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=30s",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=parley", "LimitNOFILE=65536"):
        assert line in unit.split("\n"), line
    assert "u parley" in open(os.path.join(dest, "usr/lib/sysusers.d/parley.conf")).read()
    conf = os.path.join(dest, "etc/parley/parley.conf")
    # The example config is one serve accepts.
    r = subprocess.run([binary, "check", "--config", conf], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for page, name in (("usr/share/man/man1/parley.1", "PARLEY(1)"),
                       ("usr/share/man/man5/parley.conf.5", "PARLEY.CONF(5)")):
        path = os.path.join(dest, page)
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert name in r.stdout
    # A second install keeps the config an operator has edited.
    with open(conf, "a") as f:
        f.write("; edited\n")
    r = _install(dest)
    assert "kept" in r.stdout
    assert open(conf).read().endswith("; edited\n")
