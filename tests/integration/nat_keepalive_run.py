"""nat_keepalive_run.py: a real baresip phone behind a NAT router whose UDP mappings time out
after 3 s (conntrack timeouts set low in the router namespace, natnet.py) stays reachable
for an incoming call long after its REGISTER, because Parley sends it keepalive OPTIONS
(--nat-ping-interval). Run it inside `unshare -n -m`: nothing it builds is visible outside.

usage: nat_keepalive_run.py PARLEY_BIN WORKDIR INTERVAL
INTERVAL 0 is the control: no keepalive, the mapping expires, and the call cannot reach the
phone. Writes WORKDIR/keepalive.json: {"answered": bool, "pinged": n, "detail": "..."}.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import natnet  # noqa: E402
from baresip import Baresip  # noqa: E402

BIN, WORK, INTERVAL = sys.argv[1], sys.argv[2], int(sys.argv[3])
DB = os.path.join(WORK, "ka.db")
LOG = os.path.join(WORK, "parley.log")
SRV_IP, SRV_PORT = "203.0.113.1", 5060
MAPPING_S = 3   # the router forgets an idle UDP mapping after this long
IDLE_S = 12     # how long the phone stays idle before the call: four mapping lifetimes


def parley_log():
    with open(LOG, "rb") as f:
        return f.read().decode("utf-8", "replace")


def main():
    natnet.private_netns_dir()
    topo = natnet.build_two_nats(SRV_IP)
    for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
        natnet.run_in("rtr2", "sysctl", "-q", "-w", f"net.netfilter.{key}={MAPPING_S}")
    log = open(LOG, "ab")
    srv = natnet.start_parley(BIN, "srv", SRV_IP, SRV_PORT, DB, log, "--nat-ping-interval", str(INTERVAL))
    result = {"answered": False, "pinged": 0, "detail": ""}
    phones = []
    try:
        ph = topo["phones"]
        for user, ns in (("alice", "ph1"), ("bob", "ph2")):
            subprocess.run([BIN, "user", "add", f"{user}@a.test", "--password", f"{user}pw", "--db", DB],
                           check=True, capture_output=True)
            phones.append(Baresip(WORK, user, user, "a.test", f"{user}pw", SRV_PORT, server_host=SRV_IP,
                                  answermode="auto", host=ph[ns]["addr"], netns=ns, sip_port=5060, ctrl_port=4444))
        alice, bob = phones
        for p in phones:
            p.start()
        for p in phones:
            p.wait_registered()
        time.sleep(IDLE_S)
        result["pinged"] = len(re.findall(r"send: to 203\.0\.113\.3:\d+ \d+ bytes: OPTIONS sip:bob", parley_log()))
        alice.command("dial", bob.aor)
        try:
            alice.wait_event("CALL_ESTABLISHED", 15)
            result["answered"] = True
        except TimeoutError:
            result["detail"] = "no answer: " + natnet.conntrack_table("rtr2")[-2000:]
        alice.command("hangup")
    except Exception as e:  # noqa: BLE001 -- reported in the result, logs kept
        result["detail"] = f"{type(e).__name__}: {e}"
    finally:
        for p in phones:
            p.stop()
        natnet.stop_parley(srv, log)
    fatal = [m for m in ("ERROR: AddressSanitizer", "runtime error:") if m in parley_log()]
    result["clean_exit"] = srv.returncode == 0 and not fatal
    with open(os.path.join(WORK, "keepalive.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
