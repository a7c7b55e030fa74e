"""test_nat.py: real baresip phones behind real NAT routers (network namespaces and nftables,
natnet.py) call each other through Parley; the scenario is nat_run.py, run inside
`unshare -n -m` so that nothing it builds is visible outside or can reach a real network.
Signalling only: no media relay, so no audio can pass between the two private LANs."""
import json
import os
import subprocess
import sys

from conftest import BIN

HERE = os.path.dirname(os.path.abspath(__file__))


def run_scenario(tmp_path, *extra):
    r = subprocess.run(["unshare", "-n", "-m", sys.executable, os.path.join(HERE, "nat_run.py"), BIN,
                        str(tmp_path), *extra], capture_output=True, text=True, timeout=240)
    out = r.stdout + r.stderr
    path = tmp_path / "nat.json"
    assert path.exists(), f"nat_run.py wrote no result (exit {r.returncode}):\n{out[-4000:]}"
    res = json.loads(path.read_text())
    failed = [c for c in res["checks"] if not c["ok"]]
    report = "\n".join(f"{c['check']}: {c['detail']}" for c in failed) + f"\n--- output:\n{out[-3000:]}"
    return r, res, failed, report


def test_control_without_nat(tmp_path):
    """The same two calls when the routers only route (the phones' own addresses reachable):
    every check of the scenario holds, so a failure behind NAT is the NAT's doing."""
    r, res, failed, report = run_scenario(tmp_path, "--no-nat")
    assert not failed, report
    assert r.returncode == 0 and res["ok"], report


def test_calls_between_phones_behind_two_nats(tmp_path):
    """alice (behind rtr1) calls bob (behind rtr2) and hangs up; at the same time dave
    (behind rtr2) calls carol (behind rtr1) and carol hangs up. Each call is answered, the
    ACK and the BYE reach the other phone through its router (the dialog's flows, README
    "Phones behind NAT"; before them both went to the phones' private Contacts), and the call
    record ends."""
    r, res, failed, report = run_scenario(tmp_path)
    answered = [c for c in res["checks"] if "answered (the caller" in c["check"]]
    assert len(answered) == 2 and all(c["ok"] for c in answered), report
    private = [c for c in failed if c["check"].split(": ", 1)[-1].startswith("Parley sent the")
               and "'192.168." in c["detail"]]
    assert not private, "in-dialog requests went to a private Contact:\n" + report
    assert not failed, report
    assert r.returncode == 0 and res["ok"], report


def run_keepalive(tmp_path, interval):
    r = subprocess.run(["unshare", "-n", "-m", sys.executable, os.path.join(HERE, "nat_keepalive_run.py"), BIN,
                        str(tmp_path), str(interval)], capture_output=True, text=True, timeout=240)
    path = tmp_path / "keepalive.json"
    out = r.stdout + r.stderr
    assert path.exists(), f"nat_keepalive_run.py wrote no result (exit {r.returncode}):\n{out[-4000:]}"
    return json.loads(path.read_text()), out


def test_keepalive_keeps_the_nat_open(tmp_path):
    """bob's router forgets an idle UDP mapping after 3 s; with a keepalive OPTIONS every 2 s
    Parley's INVITE still reaches him 12 s after he registered, and he answers."""
    res, out = run_keepalive(tmp_path, 2)
    assert res["pinged"] >= 3, (res, out[-3000:])
    assert res["answered"], (res, out[-3000:])
    assert res["clean_exit"], (res, out[-3000:])


def test_without_keepalive_the_nat_closes(tmp_path):
    """The control: with nat-ping-interval 0 the same call cannot reach bob (his router has
    forgotten the mapping), which is what the keepalive is for."""
    res, out = run_keepalive(tmp_path, 0)
    assert res["pinged"] == 0, (res, out[-3000:])
    assert not res["answered"], (res, out[-3000:])
    assert res["clean_exit"], (res, out[-3000:])
