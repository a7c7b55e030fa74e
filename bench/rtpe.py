#!/usr/bin/env python3
"""rtpe.py: a small client of rtpengine's ng control protocol (bencode over UDP), for the
relay pass of bench.sh (no third-party modules).
  rtpe.py ping PORT [TIMEOUT_S]   wait until rtpengine on 127.0.0.1:PORT answers ng `ping`
                                  (exit 1 on timeout)
  rtpe.py sessions PORT           print `sessions=N calls=M managed=T terminated=D timedout=O`:
                                  N = rtpengine's own current sessions (ng `statistics`:
                                  currentstatistics.sessionsown, the figure `rtpengine-ctl list
                                  numsessions` prints), M = the call-IDs ng `list` returns (their
                                  first 20 on stderr), T = sessions ended since start
                                  (managedsessions; T + N were created), D = ended by a delete,
                                  O = ended by rtpengine's own timeout
  rtpe.py cmd PORT JSON           send one ng command (a JSON object) and print the answer as
                                  JSON (for trying things by hand)
Every message is "COOKIE BENCODED-DICT"; the answer carries the same cookie."""
import json, os, socket, sys, time


# The bencode codec of the tests' ng helper (one codec for the repository).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from ngpeer import bdecode, bencode  # noqa: E402


_seq = [0]


def ng(port, msg, timeout=2.0, tries=3):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(timeout)
    try:
        for n in range(tries):
            _seq[0] += 1  # a fresh cookie per message: rtpengine answers a repeated cookie from its cache
            cookie = b"%d_%d_%d" % (os.getpid(), int(time.time() * 1000), _seq[0])
            s.sendto(cookie + b" " + bencode(msg), ("127.0.0.1", port))
            try:
                while True:
                    d = s.recv(1 << 20)
                    c, _, body = d.partition(b" ")
                    if c == cookie:
                        return bdecode(body)
            except (socket.timeout, ConnectionRefusedError):
                continue
    finally:
        s.close()
    return None


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "ping":
        t0 = time.monotonic()
        limit = float(sys.argv[3]) if len(sys.argv) > 3 else 10
        while time.monotonic() - t0 < limit:
            r = ng(port, {"command": "ping"}, timeout=0.2, tries=1)
            if r and r.get("result") == "pong":
                return 0
            time.sleep(0.05)
        return 1
    if cmd == "sessions":
        st = ng(port, {"command": "statistics"})
        ls = ng(port, {"command": "list", "limit": 1000000})
        if st is None or ls is None:
            print("sessions=? calls=?")
            print("rtpe.py: rtpengine on 127.0.0.1:%d does not answer" % port, file=sys.stderr)
            return 1
        stats = st.get("statistics", {})
        own = stats.get("currentstatistics", {}).get("sessionsown", "?")
        tot = stats.get("totalstatistics", {})
        calls = ls.get("calls", [])
        print(f"sessions={own} calls={len(calls)} managed={tot.get('managedsessions', '?')} "
              f"terminated={tot.get('regularterminatedsessions', '?')} "
              f"timedout={tot.get('timeoutsessions', '?')}")
        for c in calls[:20]:
            print(f"  left in rtpengine: call-id {c}", file=sys.stderr)
        return 0
    if cmd == "cmd":
        print(json.dumps(ng(port, json.loads(sys.argv[3])), indent=1, default=str))
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
