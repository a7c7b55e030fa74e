#!/usr/bin/env python3
# server_seeds.py: writes the hand-made seeds of tests/fuzz/corpus/fuzz_server/ (record format: see fuzz_server.c).
import os
import struct
import sys

# Sources (ctl bits 0-2), as in fuzz_server.c.
CAROL, ALICE, BOB, PEER, V6, LOOP, PRIV, DOC = range(8)
AS_IS, SIGNED, REPLY = 0, 2, 3
UNIT = {0: 0, 1: 1, 4: 2, 16: 3, 64: 4, 256: 5, 1000: 6, 2000: 7}


def rec(text, src=0, how=AS_IS, delay_ms=0):
    """One record; delay_ms is rounded to a unit the format has."""
    unit, n = 0, 0
    if delay_ms:
        for u in (1, 4, 16, 64, 256, 1000, 2000):
            if delay_ms / u <= 255:
                unit, n = u, max(1, round(delay_ms / u))
                break
    body = text.encode() if isinstance(text, str) else text
    ctl = (src & 7) | (how << 3) | (UNIT[unit] << 5)
    return struct.pack(">BBH", ctl, n, len(body)) + body


def reply(text, newest=0, delay_ms=0):
    """A response from where the newest-but-`newest` request went."""
    return rec(text, newest, REPLY, delay_ms)


def req(method, ruri, frm, to, callid, cseq, via="127.0.0.10:5060", branch="z9hG4bKs1", extra="",
        body="", cseq_method=None):
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP {via};branch={branch};rport",
             "Max-Forwards: 70",
             f"From: {frm}",
             f"To: {to}",
             f"Call-ID: {callid}",
             f"CSeq: {cseq} {cseq_method or method}"]
    lines += [l for l in extra.split("\n") if l]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
CAROL_FROM = "<sip:carol@c.test>;tag=c1"
OB_CONTACT = '<sip:alice@127.0.0.11:5062;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-0000000000a1>"'
OB_EXTRA = "Supported: outbound, path, gruu\n"
BOB_TO = "<sip:bob@a.test>"


def alice_register(cseq, contact="<sip:alice@127.0.0.11:5062>", extra="", branch="z9hG4bKa"):
    return req("REGISTER", "sip:a.test", "<sip:alice@a.test>;tag=a1", "<sip:alice@a.test>", "alice-reg@x",
               cseq, via="127.0.0.11:5062", branch=f"{branch}{cseq}",
               extra=(f"Contact: {contact}\n" if contact else "") + extra)


def carol_invite(branch="z9hG4bKc1", callid="call1@c.test", extra="", ruri="sip:bob@a.test"):
    return req("INVITE", ruri, CAROL_FROM, BOB_TO, callid, 1, branch=branch,
               extra="Contact: <sip:carol@127.0.0.10:5060>\n" + extra, body=SDP)


def alice_invite(cseq, ruri="sip:bob@a.test", to=BOB_TO):
    return req("INVITE", ruri, "<sip:alice@a.test>;tag=a2", to, "alice-call@x", cseq, via="127.0.0.11:5062",
               branch=f"z9hG4bKai{cseq}", extra="Contact: <sip:alice@127.0.0.11:5062>\n", body=SDP)


RINGING = "SIP/2.0 180 Ringing\r\nContact: <sip:bob@127.0.0.20:5070>\r\nContent-Length: 0\r\n\r\n"
OK_SDP = ("SIP/2.0 200 OK\r\nContact: <sip:bob@127.0.0.20:5070>\r\nRecord-Route: <sip:a.test;lr>\r\n"
          f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}")
IN_DIALOG_TO = "<sip:bob@a.test>;tag=fzb1"

SEEDS = {
    "register": [rec(alice_register(1), ALICE)],
    "register_auth": [
        rec(alice_register(1), ALICE),
        rec(alice_register(2), ALICE, SIGNED),
        rec(alice_register(3, contact=None), ALICE, SIGNED, delay_ms=1000),
        rec(alice_register(4, contact="*", extra="Expires: 0\n"), ALICE, SIGNED, delay_ms=1000),
    ],
    "register_423": [
        rec(alice_register(1, extra="Expires: 5\n"), ALICE),
        rec(alice_register(2, extra="Expires: 5\n"), ALICE, SIGNED),
    ],
    "invite_foreign": [rec(carol_invite(), CAROL)],
    "invite_ring_timeout": [rec(carol_invite(), CAROL), reply(RINGING, delay_ms=1000),
                            rec(b"", CAROL, delay_ms=70000)],
    "invite_cancel": [
        rec(carol_invite(), CAROL),
        rec(req("CANCEL", "sip:bob@a.test", CAROL_FROM, BOB_TO, "call1@c.test", 1, branch="z9hG4bKc1"),
            CAROL, delay_ms=200),
        reply("SIP/2.0 200 OK\r\n", delay_ms=10),
        reply("SIP/2.0 487 Request Terminated\r\n", newest=1, delay_ms=10),
    ],
    "invite_200_ack_bye": [
        rec(carol_invite(), CAROL),
        reply(RINGING, delay_ms=50),
        reply(OK_SDP, delay_ms=2000),
        rec(req("ACK", "sip:bob@127.0.0.20:5070", CAROL_FROM, IN_DIALOG_TO, "call1@c.test", 1,
                branch="z9hG4bKc1ack", extra="Route: <sip:a.test;lr>\n"), CAROL, delay_ms=20),
        rec(req("BYE", "sip:bob@127.0.0.20:5070", CAROL_FROM, IN_DIALOG_TO, "call1@c.test", 2,
                branch="z9hG4bKc1bye", extra="Route: <sip:a.test;lr>\n"), CAROL, delay_ms=5000),
        reply("SIP/2.0 200 OK\r\n", delay_ms=20),
    ],
    "invite_busy": [
        rec(carol_invite(), CAROL),
        reply("SIP/2.0 486 Busy Here\r\n", delay_ms=300),
        rec(req("ACK", "sip:bob@a.test", CAROL_FROM, IN_DIALOG_TO, "call1@c.test", 1, branch="z9hG4bKc1"),
            CAROL, delay_ms=20),
    ],
    "alice_calls_bob": [
        rec(alice_invite(1), ALICE),
        rec(req("ACK", "sip:bob@a.test", "<sip:alice@a.test>;tag=a2", BOB_TO + ";tag=x", "alice-call@x", 1,
                via="127.0.0.11:5062", branch="z9hG4bKai1"), ALICE),
        rec(alice_invite(2), ALICE, SIGNED, delay_ms=100),
        reply(RINGING, delay_ms=100),
        reply("SIP/2.0 603 Decline\r\n", delay_ms=100),
    ],
    "alice_calls_peer": [
        rec(alice_invite(1, "sip:dave@b.test", "<sip:dave@b.test>"), ALICE),
        rec(alice_invite(2, "sip:dave@b.test", "<sip:dave@b.test>"), ALICE, SIGNED),
        reply("SIP/2.0 100 Trying\r\n", delay_ms=10),
        reply("SIP/2.0 503 Service Unavailable\r\n", delay_ms=100),
    ],
    "peer_calls_alice": [rec(req("INVITE", "sip:alice@a.test", "<sip:dave@b.test>;tag=d1", "<sip:alice@a.test>",
                                 "peer1@b.test", 1, via="127.0.0.30:5060", body=SDP), PEER)],
    "ack_stray": [rec(req("ACK", "sip:bob@a.test", CAROL_FROM, IN_DIALOG_TO, "nocall@c.test", 1), CAROL)],
    "bye_route": [rec(req("BYE", "sip:bob@127.0.0.20:5070", CAROL_FROM, IN_DIALOG_TO, "call9@c.test", 2,
                          extra="Route: <sip:a.test;lr>\n"), CAROL)],
    "bye_strict": [rec(req("BYE", "sip:a.test", CAROL_FROM, IN_DIALOG_TO, "call9@c.test", 2,
                           extra="Route: <sip:bob@127.0.0.20:5070>\n"), CAROL)],
    "options": [rec(req("OPTIONS", "sip:a.test", CAROL_FROM, "<sip:a.test>", "opt1@c.test", 1), CAROL)],
    "options_v6": [rec(req("OPTIONS", "sip:[::1]", CAROL_FROM, "<sip:a.test>", "opt2@c.test", 1,
                           via="[::1]:5080", extra="Max-Forwards: 0\n"), V6)],
    "message_bob": [rec(req("MESSAGE", "sip:bob@a.test", CAROL_FROM, BOB_TO, "msg1@c.test", 1,
                            extra="Content-Type: text/plain\n") + "", PRIV),
                    reply("SIP/2.0 202 Accepted\r\n", delay_ms=30)],
    "loop": [rec(req("INVITE", "sip:bob@a.test", CAROL_FROM, BOB_TO, "loop@c.test", 1,
                     extra="Via: SIP/2.0/UDP a.test;branch=z9hG4bKold\n"), CAROL)],
    "retransmit": [rec(carol_invite(), CAROL), rec(carol_invite(), CAROL, delay_ms=500),
                   rec(carol_invite(), CAROL, delay_ms=1000)],
    "response_stray": [rec("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\r\n"
                           "Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKx\r\nFrom: <sip:a@a.test>;tag=1\r\n"
                           "To: <sip:b@a.test>;tag=2\r\nCall-ID: s@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", BOB)],
    # Outbound flows, Path and GRUU (RFC 5626, 3327, 5627): two flows of one phone, then
    # calls to its pub-gruu and to a temp-gruu that is not ours.
    "outbound_gruu": [
        rec(alice_register(2, contact=OB_CONTACT + ";reg-id=1", extra=OB_EXTRA), ALICE, SIGNED),
        rec(alice_register(3, contact=OB_CONTACT + ";reg-id=2", extra=OB_EXTRA + "Path: <sip:127.0.0.12;lr;ob>\n",
                           branch="z9hG4bKo"), ALICE, SIGNED),
        rec(carol_invite(ruri="sip:alice@a.test;gr=urn:uuid:00000000-0000-1000-8000-0000000000a1"), CAROL),
        reply("SIP/2.0 486 Busy Here\r\n", delay_ms=20),
        rec(carol_invite(branch="z9hG4bKc2", callid="call2@c.test", ruri="sip:tgr-00ff@a.test;gr"), CAROL),
    ],
    "garbage": [rec(b"\x00\xffINVITE sip:\r\n\r\n", DOC), rec(b"\r\n\r\n", DOC),
                rec("INVITE sip:bob@a.test SIP/3.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n", DOC)],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "fuzz_server")
    os.makedirs(out, exist_ok=True)
    for name, recs in SEEDS.items():
        with open(os.path.join(out, "seed_" + name), "wb") as f:
            f.write(b"".join(recs))


if __name__ == "__main__":
    main()
