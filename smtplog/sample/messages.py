"""Messages: submission, content filter, delivery attempts, retries, expiry, NDNs (a mixin of
Simulation).
"""

from __future__ import annotations

import heapq
import random

from smtplog.sample.campus import DEPTS, FILTER_RELAY, GIVEN, LIFETIME, TLS_FROM, TLS_TO
from smtplog.sample.clock import Clock
from smtplog.sample.cluster import Msg, Rcpt, Relay, Sender
from smtplog.sample.expected import (
    AUTH_BLK,
    AUTH_RCV,
    BOUNCED,
    DEFERRALS,
    DEFERRED,
    DELIVERED,
    EXPIRED,
    PF_BOUNCED,
    RECEIVED,
    REJECTED,
    SENT,
)
from smtplog.sample.replies import _bounce, _counters, _deferral, _delays, _fmt_delay, _ok_reply


class _Messages:
    """The life of messages; mixed into Simulation (which provides emit, rng, relays ...)."""

    rng: random.Random
    clock: Clock
    relays: list[Relay]

    def session(
        self,
        t: float,
        sender: Sender,
        n: int,
        client: tuple[str, str] | None = None,
        hostile: bool = False,
    ) -> None:
        """One SMTP session of `sender` submitting `n` messages (-1: one bulk message)."""
        rng = self.rng
        rnd = rng.random
        relay = self.pick_relay()
        add = self.bufs[relay.index].append
        sasl = sender.login is not None
        name, ip = client or (sender.client, sender.ip)
        peer = f"{name}[{ip}]"
        smtpd = relay.new_proc("submission/smtpd" if sasl else "smtpd")
        add((t, f"{smtpd}: connect from {peer}"))
        if sasl:
            t += 0.02 + 0.18 * rnd()
            add((t, f"{smtpd}: Anonymous TLS connection established from {peer}: {TLS_FROM}"))
        typo = sasl and not hostile and rng.random() < 0.02
        if typo:  # a mistyped password, then the right one
            t += 1 + 5 * rnd()
            self.sasl_failure(t, relay, smtpd, peer, "LOGIN", sender.login)
        t += 0.1 + 1.4 * rnd()
        helo = name if name != "unknown" else f"[192.168.{rng.randint(0, 5)}.{rng.randint(2, 254)}]"
        ok = tried = 0
        for i in range(max(n, 1)):
            if i:
                t += 0.5 + 19.5 * rnd()
            t, accepted, attempted = self.submit(
                t, relay, smtpd, peer, ip, helo, sender, bulk=n < 0, hostile=hostile
            )
            ok += accepted
            tried += attempted
        t += 0.01 + 0.19 * rnd()
        counters = _counters(sasl, max(n, 1), ok, tried, int(typo))
        add((t, f"{smtpd}: disconnect from {peer} {counters}"))

    def submit(
        self,
        t: float,
        relay: Relay,
        smtpd: str,
        peer: str,
        ip: str,
        helo: str,
        sender: Sender,
        bulk: bool,
        hostile: bool,
    ) -> tuple[float, int, int]:
        """One accepted message: client=, cleanup, qmgr, then the content filter."""
        rng = self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        frm = sender.envelope(rng)
        rcpts = self.hostile_recipients() if hostile else self.recipients(sender, bulk)
        qid = relay.new_qid(t, reuse=rng.random() < 0.01)
        if sender.login:
            method = "LOGIN" if sender.kind == "webmail" or rng.random() < 0.3 else "PLAIN"
            self.emit(
                t,
                relay,
                f"{smtpd}: {qid}: client={peer}, sasl_method={method}, "
                f"sasl_username={sender.login}",
                sender.key,
                AUTH_RCV,
                RECEIVED,
            )
            self.authenticated(sender.login)
        else:
            self.emit(t, relay, f"{smtpd}: {qid}: client={peer}", pf=RECEIVED)
        tried = len(rcpts)
        if tried >= 2 and rng.random() < 0.015:
            tried += 1
            bad = f"former.{rng.choice(GIVEN)}@{rng.choice(DEPTS)}.nthu.edu.tw"
            self.emit(
                t + 0.01,
                relay,
                f"{smtpd}: {qid}: reject: RCPT from {peer}: 550 5.1.1 "
                f"<{bad}>: Recipient address rejected: User unknown in "
                f"relay recipient table; from=<{frm}> to=<{bad}> "
                f"proto=ESMTP helo=<{helo}>",
                sender.key,
                AUTH_BLK,
                REJECTED,
            )
        t += 0.1 + 1.4 * rnd()
        mid = self.message_id(sender, t)
        add((t, f"{relay.proc('cleanup')}: {qid}: message-id=<{mid}>"))
        if sender.login and rng.random() < 0.9:
            add(
                (
                    t + 0.003,
                    f"opendkim[{1200 + relay.index}]: {qid}: DKIM-Signature "
                    f"field added (s=default, d={sender.domain})",
                )
            )
        t += 0.005 + 0.045 * rnd()
        size = min(int(rng.lognormvariate(8.6, 1.1)) + 400, 26_000_000)
        add(
            (
                t,
                f"{relay.qmgr}: {qid}: from=<{frm}>, size={size}, "
                f"nrcpt={len(rcpts)} (queue active)",
            )
        )
        msg = Msg(relay, qid, sender, frm, size, mid, t, rcpts)
        msg.filtering = True
        msg.spam = hostile and rng.random() < 0.2
        msg.client_ip = ip
        self.filter_hop(msg, t + 0.002 + 0.018 * rnd())
        return t, len(rcpts), tried

    def filter_hop(self, msg: Msg, t: float) -> None:
        """QID1 goes through amavis and comes back as QID2 ("queued as"), then QID2 is delivered."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        if relay.filter_down(t):
            self.filter_deferred(msg, t)
            return
        took = 0.1 + 2.4 * rnd() if msg.nrcpt < 10 else 1.5 + 4.5 * rnd()
        if msg.spam:
            self.filter_bounced(msg, t, took)
            return
        back = t + took * 0.8
        qid2 = relay.new_qid(back)
        reinject = relay.proc("reinject")
        add((back, f"{reinject}: connect from localhost[127.0.0.1]"))
        tc = back + 0.001 + 0.009 * rnd()
        self.emit(
            tc,
            relay,
            f"{reinject}: {qid2}: client=localhost[127.0.0.1]",
            pf=relay.reinject_received,
        )
        size2 = msg.size + rng.randint(600, 1600)
        tq = tc + 0.005 + 0.045 * rnd()
        add((tq - 0.002, f"{relay.proc('cleanup')}: {qid2}: message-id=<{msg.mid}>"))
        add(
            (
                tq,
                f"{relay.qmgr}: {qid2}: from=<{msg.frm}>, size={size2}, "
                f"nrcpt={msg.nrcpt} (queue active)",
            )
        )
        add(
            (
                tq + 0.001,
                f"{reinject}: disconnect from localhost[127.0.0.1] ehlo=1 "
                f"mail=1 rcpt={msg.nrcpt} data=1 quit=1 "
                f"commands={4 + msg.nrcpt}",
            )
        )
        # amavis answers Postfix once QID2 is queued, so the hand-off is usually logged after
        # QID2's client= line; with syslog's coarse ordering it is sometimes logged before.
        ts = t + took if rng.random() < 0.65 else back + 0.0005
        self.amavis(msg, ts - 0.001, "Passed CLEAN {RelayedOutbound}", qid2, took)
        done = self.hand_off(msg, ts, qid2)
        add((done + 0.001, f"{relay.qmgr}: {msg.qid}: removed"))
        relay.free(msg.qid, done + 0.001)
        queued = Msg(relay, qid2, msg.sender, msg.frm, size2, msg.mid, tc, msg.rcpts)
        self.attempt(queued, max(tq, done) + 0.01 + 0.29 * rnd())

    def hand_off(self, msg: Msg, t: float, qid2: str) -> float:
        """QID1's status=sent lines to the filter: nobody's Sent, but pflogsumm's "delivered"."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        prog = relay.proc("filter")
        a = 0.01 + 0.29 * rnd()
        timing = _delays(t - msg.arrival, min(a, t - msg.arrival), 0.01, 0)
        for rc in msg.rcpts:
            self.emit(
                t,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay={FILTER_RELAY}, "
                f"{timing}, dsn=2.0.0, status=sent (250 2.0.0 from "
                f"MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {qid2})",
                pf=DELIVERED,
            )
            t += 0.0002
        return t

    def amavis(self, msg: Msg, t: float, verdict: str, qid2: str | None, took: float) -> None:
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        pid = rng.choice(relay.amavis)
        bank = "ORIGINATING" if msg.sender and msg.sender.login else "MYNETS"
        rcpts = ",".join(f"<{rc.addr}>" for rc in msg.rcpts)
        queued = f", queued_as: {qid2}" if qid2 else ""
        hits = f"{rng.uniform(-3, 2):.3f}" if qid2 else f"{(8 + 22 * rnd()):.3f}"
        add(
            (
                t,
                f"amavis[{pid}]: ({pid:05d}-{next(relay.amavis_seq) % 100:02d}) "
                f"{verdict}, {bank} LOCAL [{msg.client_ip}]:{rng.randint(30000, 65000)}"
                f" [{msg.client_ip}] <{msg.frm}> -> {rcpts}, Queue-ID: {msg.qid}, "
                f"Message-ID: <{msg.mid}>, mail_id: {rng.getrandbits(60):015x}, "
                f"Hits: {hits}, size: {msg.size}{queued}, {int(took * 1000)} ms",
            )
        )

    def filter_bounced(self, msg: Msg, t: float, took: float) -> None:
        """amavis rejects spam: a final non-delivery of every recipient at the filter hop."""
        relay, rng = msg.relay, self.rng
        pid = rng.choice(relay.amavis)
        ts = t + took
        self.amavis(msg, ts - 0.001, "Blocked SPAM {RejectedOutbound}", None, took)
        prog = relay.proc("filter")
        timing = _delays(ts - msg.arrival, min(0.05, ts - msg.arrival), 0.01, 0)
        for rc in msg.rcpts:
            self.emit(
                ts,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay={FILTER_RELAY}, "
                f"{timing}, dsn=5.7.0, status=bounced (host 127.0.0.1[127.0.0.1]"
                f" said: 554 5.7.0 Reject, id={pid:05d}-{rng.randint(1, 99):02d}"
                " - spam (in reply to end of DATA command))",
                msg.who,
                BOUNCED,
                PF_BOUNCED,
            )
            ts += 0.0002
        failed, msg.rcpts = msg.rcpts, []
        self.after_attempt(msg, ts, failed)

    def filter_deferred(self, msg: Msg, t: float) -> None:
        """amavis is down: QID1's recipients are deferred and retried later."""
        relay, rng = msg.relay, self.rng
        refused = "connect to 127.0.0.1[127.0.0.1]:10024: Connection refused"
        if rng.random() < 0.5:
            prog = relay.proc("filter")
            self.emit(t, relay, f"{prog}: {refused}")
            reason = refused
        else:
            prog, reason = relay.proc("error"), f"delivery temporarily suspended: {refused}"
        timing = _delays(t - msg.arrival, t - msg.arrival, 0, 0)
        for rc in msg.rcpts:
            self.emit(
                t,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay=none, {timing}, "
                f"dsn=4.4.1, status=deferred ({reason})",
                msg.who,
                DEFERRED,
                DEFERRALS,
            )
        self.schedule(msg, t)

    def retry(self, msg: Msg, t: float) -> None:
        """A deferred message enters the active queue again: qmgr logs its sender again."""
        rnd = self.rng.random
        relay = msg.relay
        add = self.bufs[relay.index].append
        add(
            (
                t,
                f"{relay.qmgr}: {msg.qid}: from=<{msg.frm}>, size={msg.size}, "
                f"nrcpt={msg.nrcpt} (queue active)",
            )
        )
        if msg.filtering:
            self.filter_hop(msg, t + 0.002 + 0.018 * rnd())
        else:
            self.attempt(msg, t + 0.01 + 0.29 * rnd())

    def attempt(self, msg: Msg, t: float) -> None:
        """One delivery attempt of every pending recipient, one SMTP session per destination."""
        rnd = self.rng.random
        groups: dict[str, list[Rcpt]] = {}
        for rc in msg.rcpts:
            groups.setdefault(rc.dom.name, []).append(rc)
        pending: list[Rcpt] = []
        failed: list[Rcpt] = []
        end = t
        for rcpts in groups.values():
            start = t + 0.01 + 0.39 * rnd()
            end = max(end, self.deliver(msg, rcpts, start, pending, failed))
        msg.rcpts = pending
        self.after_attempt(msg, end, failed)

    def deliver(
        self, msg: Msg, rcpts: list[Rcpt], t: float, pending: list[Rcpt], failed: list[Rcpt]
    ) -> float:
        """The status lines of one destination; returns the time of the last one."""
        rng, relay = self.rng, msg.relay
        rnd = rng.random
        add = self.bufs[relay.index].append
        dom = rcpts[0].dom
        hp = f"{dom.mx}[{rng.choice(dom.ips)}]" if dom.ips else ""
        prog, conn, suspended = relay.proc("smtp"), 0.05 + 1.45 * rnd(), False
        if dom.mode == "dead" and all(rc.left > 0 and rc.dkind == "timeout" for rc in rcpts):
            if rng.random() < 0.4:
                prog, conn, suspended = relay.proc("error"), 0.0, True
            else:
                conn = 30.0
                add((t + conn, f"{prog}: connect to {hp}:25: Connection timed out"))
        elif dom.mode == "typo":
            conn = 0.01 + 0.19 * rnd()
        elif dom.style in TLS_TO and rng.random() < 0.9:
            add(
                (
                    t + conn * 0.9,
                    f"{prog}: Trusted TLS connection established to {hp}:25: {TLS_TO[dom.style]}",
                )
            )
        a, b = t - msg.arrival, rng.random() * 0.05
        tl = t + b + conn
        head = f"{prog}: {msg.qid}: to=<"
        fixed = f"{_fmt_delay(a)}/{_fmt_delay(b)}/{_fmt_delay(conn)}/"
        for rc in rcpts:
            tl += 0.02 + rng.random() * 0.4
            status, col, pf, (relay_field, dsn, reason) = self.step(msg, rc, hp, tl)
            if suspended:
                reason = f"delivery temporarily suspended: {reason}"
            elif rng.random() < 0.05 and relay_field != "none":
                relay_field = f"{relay_field}, conn_use={rng.randint(2, 5)}"
            self.emit(
                tl,
                relay,
                f"{head}{rc.addr}>, relay={relay_field}, delay="
                f"{_fmt_delay(tl - msg.arrival)}, delays={fixed}"
                f"{_fmt_delay(tl - t - b - conn)}, dsn={dsn}, status={status} "
                f"({reason})",
                msg.who,
                col,
                pf,
            )
            if status == "deferred":
                pending.append(rc)
            elif status == "bounced":
                failed.append(rc)
        return tl

    def step(self, msg: Msg, rc: Rcpt, hp: str, t: float) -> tuple[str, int, int, tuple]:
        """What happens to `rc` at this attempt: (status, column, pflogsumm column, fields)."""
        relay_ip = msg.relay.ip
        if rc.left > 0:
            rc.left -= 1
            return (
                "deferred",
                DEFERRED,
                DEFERRALS,
                _deferral(rc.dkind, rc.dom, hp, rc.addr, relay_ip, self.rng),
            )
        if rc.final == "sent":
            return (
                "sent",
                SENT,
                DELIVERED,
                (f"{hp}:25", "2.0.0", _ok_reply(rc.dom.style, t, self.rng)),
            )
        sender_domain = msg.frm.split("@")[-1].lower()
        return (
            "bounced",
            BOUNCED,
            PF_BOUNCED,
            _bounce(rc.bkind, rc.dom, hp, rc.addr, relay_ip, sender_domain, self.rng),
        )

    def after_attempt(self, msg: Msg, t: float, failed: list[Rcpt]) -> None:
        """Expire after five days; notify the sender of failures; retry later or remove."""
        relay = msg.relay
        add = self.bufs[relay.index].append
        if msg.rcpts and t - msg.arrival > LIFETIME:
            t += 0.001
            self.emit(
                t,
                relay,
                f"{relay.qmgr}: {msg.qid}: from=<{msg.frm}>, status=expired, returned to sender",
                msg.who,
                EXPIRED,
            )
            failed, msg.rcpts = failed + msg.rcpts, []
        if failed and msg.who:
            t = self.notify(msg, t)
        if msg.rcpts:
            self.schedule(msg, t)
        else:
            t += 0.001
            add((t, f"{relay.qmgr}: {msg.qid}: removed"))
            relay.free(msg.qid, t)

    def notify(self, msg: Msg, t: float) -> float:
        """A non-delivery notification from the null sender back to the sender's mailbox."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        t += 0.01 + 0.29 * rnd()
        nq = relay.new_qid(t)
        lt = self.clock.local(t)
        add((t, f"{relay.proc('cleanup')}: {nq}: message-id=<{lt:%Y%m%d%H%M%S}.{nq}@{relay.fqdn}>"))
        size = rng.randint(2500, 9000)
        add((t + 0.002, f"{relay.qmgr}: {nq}: from=<>, size={size}, nrcpt=1 (queue active)"))
        add(
            (
                t + 0.003,
                f"{relay.proc('bounce')}: {msg.qid}: sender non-delivery notification: {nq}",
            )
        )
        dom = self.domain_of(msg.frm)
        greylisted = not dom.name.endswith("nthu.edu.tw") and rng.random() < 0.15
        rcpt = Rcpt(msg.frm, dom, int(greylisted), "sent", "greylist", "")
        ndn = Msg(relay, nq, None, "", size, "", t + 0.002, [rcpt])
        self.attempt(ndn, t + 0.01 + 0.19 * rnd())
        return t + 0.004

    def schedule(self, msg: Msg, t: float) -> None:
        """Postfix back-off: the wait doubles with the time in queue, 300 s to 4000 s."""
        age = t - msg.arrival
        due = t + min(max(age, 300.0), 4000.0) + self.rng.uniform(0, 300)
        heapq.heappush(self.queue, (due, next(self.seq), msg))
