"""Abuse and noise: rejects, SASL failures, a compromised account, other daemons (a mixin of
Simulation).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from smtplog.sample.campus import ATTACK_NETS, FAKE_ACCOUNTS, GIVEN, SPAM_FROM, TLS_FROM
from smtplog.sample.clock import Clock
from smtplog.sample.cluster import Relay, Sender
from smtplog.sample.expected import AUTH_BLK, REJECTED


class _Abuse:
    """What the Internet and other programs add to a relay's log; mixed into Simulation."""

    rng: random.Random
    clock: Clock
    relays: list[Relay]
    senders: list[Sender]
    per_day: int
    pick_relay: Callable[[], Relay]

    def side_events(self, d: int) -> None:
        """The day's rejects, password guessing and noise (self-contained sessions)."""
        rng, start = self.rng, self.clock.starts[d]
        scale = self.per_day / 300

        def when() -> float:
            return min(start + rng.uniform(0, 86400), self.cutoff)

        for _ in range(rng.randint(2, 4) + round(6 * scale * rng.random())):
            self.relay_denied(when(), self.pick_relay())
        for _ in range(round(2 * scale * rng.random() + 0.3)):
            self.not_logged_in(when(), self.pick_relay())
        for _ in range(rng.randint(1, 3)):
            self.brute_force(when(), self.pick_relay())
        for relay in self.relays:
            self.noise(d, relay, scale)

    def sasl_failure(
        self, t: float, relay: Relay, smtpd: str, peer: str, mech: str, username: str | None
    ) -> None:
        """``SASL LOGIN authentication failed``: charged to the username's sender, if any."""
        if username is None:  # Cyrus-era: the base64 challenge, no username
            self.emit(
                t,
                relay,
                f"{smtpd}: warning: {peer}: SASL {mech} authentication failed: UGFzc3dvcmQ6",
            )
            return
        who = username.lower() if "@" in username else self.logins[username].key
        self.emit(
            t,
            relay,
            f"{smtpd}: warning: {peer}: SASL {mech} authentication failed: "
            f"authentication failure, sasl_username={username}",
            who,
            AUTH_BLK,
        )

    def attacker(self) -> tuple[str, str]:
        ip = f"{self.rng.choice(ATTACK_NETS)}.{self.rng.randint(2, 254)}"
        if self.rng.random() < 0.7:
            return "unknown", ip
        return f"{ip.replace('.', '-')}.static.example.net", ip

    def guess_username(self) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.45:
            return rng.choice(self.senders).key
        if r < 0.75 and self.known_logins:
            return rng.choice(self.known_logins)
        return rng.choice(FAKE_ACCOUNTS)

    def brute_force(
        self,
        t: float,
        relay: Relay,
        username: str | None = None,
        peer: tuple[str, str] | None = None,
    ) -> float:
        """A password-guessing run: a few sessions of failed AUTH commands."""
        rng = self.rng
        name, ip = peer or self.attacker()
        client = f"{name}[{ip}]"
        cyrus = username is None and rng.random() < 0.25
        service = rng.choice(("submission/smtpd", "smtpd"))
        for _ in range(rng.randint(2, 8)):
            smtpd = relay.new_proc(service)
            self.emit(t, relay, f"{smtpd}: connect from {client}")
            tls = service == "submission/smtpd"  # AUTH only after STARTTLS there
            if tls:
                self.emit(
                    t + 0.2,
                    relay,
                    f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
                )
            tries = rng.randint(1, 3)
            for _ in range(tries):
                t += rng.uniform(1, 8)
                guess = None if cyrus else username or self.guess_username()
                if cyrus and rng.random() < 0.5:
                    self.emit(
                        t - 0.01,
                        relay,
                        f"{smtpd}: warning: SASL authentication failure: "
                        "Password verification failed",
                    )
                elif guess and rng.random() < 0.3:
                    self.emit(
                        t - 0.01,
                        relay,
                        f"dovecot: auth-worker({rng.randint(900, 9000)}): "
                        f"pam({guess},{ip},<{rng.getrandbits(64):x}>): "
                        "pam_authenticate() failed: Authentication failure "
                        "(Password mismatch?)",
                    )
                self.sasl_failure(t, relay, smtpd, client, rng.choice(("LOGIN", "PLAIN")), guess)
            t += rng.uniform(0.2, 2)
            hello, done = ("ehlo=2 starttls=1", 3) if tls else ("ehlo=1", 1)
            if rng.random() < 0.5:
                self.emit(t, relay, f"{smtpd}: lost connection after AUTH from {client}")
                counters = f"{hello} auth=0/{tries} commands={done}/{done + tries}"
            else:
                counters = f"{hello} auth=0/{tries} quit=1 commands={done + 1}/{done + 1 + tries}"
            self.emit(t + 0.001, relay, f"{smtpd}: disconnect from {client} {counters}")
            t += rng.uniform(3, 90)
        return t

    def relay_denied(self, t: float, relay: Relay) -> None:
        """An outside client tries to relay through us: NOQUEUE reject (perhaps spoofing us)."""
        rng = self.rng
        name, ip = self.attacker()
        client = f"{name}[{ip}]"
        r = rng.random()
        frm = (
            rng.choice(self.senders).envelope(rng)
            if r < 0.25
            else ""
            if r < 0.4
            else rng.choice(SPAM_FROM)
        )
        to, _ = self.random_address()
        helo = rng.choice(("WIN-8KJ2L3M4N5", "User", f"[{ip}]", "ylmf-pc", "localhost"))
        if rng.random() < 0.8:
            reason = f"554 5.7.1 <{to}>: Relay access denied"
        else:
            reason = f"450 4.7.25 Client host rejected: cannot find your hostname, [{ip}]"
        smtpd = relay.new_proc("smtpd")
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.6,
            relay,
            f"{smtpd}: NOQUEUE: reject: RCPT from {client}: {reason}; "
            f"from=<{frm}> to=<{to}> proto=ESMTP helo=<{helo}>",
            frm.lower() or None,
            AUTH_BLK,
            REJECTED,
        )
        self.emit(
            t + 0.9,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
        )

    def not_logged_in(self, t: float, relay: Relay) -> None:
        """A mail client set up without authentication: refused, charged to its sender."""
        rng = self.rng
        users = [s for s in self.senders if s.kind == "sasl"] or self.senders
        sender = rng.choice(users)
        frm = sender.envelope(rng)
        client = f"{sender.client}[{sender.ip}]"
        to, _ = self.random_address()
        smtpd = relay.new_proc("submission/smtpd")
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.1,
            relay,
            f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
        )
        self.emit(
            t + 0.4,
            relay,
            f"{smtpd}: NOQUEUE: reject: RCPT from {client}: 553 5.7.1 "
            f"<{frm}>: Sender address rejected: not logged in; from=<{frm}> "
            f"to=<{to}> proto=ESMTP helo=<[192.168.1.{rng.randint(2, 254)}]>",
            sender.key,
            AUTH_BLK,
            REJECTED,
        )
        self.emit(
            t + 0.7,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=2 starttls=1 mail=1 "
            "rcpt=0/1 quit=1 commands=5/6",
        )

    def incident(self, d: int) -> None:
        """A stolen password: a night-time spam run from abroad, then the locked account refused."""
        victim = self.logins.get("alice") or next(iter(self.logins.values()), None)
        if victim is None:
            return
        rng = self.rng
        peer = ("unknown", f"{rng.choice(ATTACK_NETS)}.{rng.randint(2, 254)}")
        t = self.clock.starts[d] + rng.uniform(2, 3) * 3600
        for _ in range(rng.randint(30, 40)):
            self.session(t, victim, 1, client=peer, hostile=True)
            t += rng.uniform(20, 90)
        relay = self.pick_relay()
        smtpd, client = relay.new_proc("submission/smtpd"), f"{peer[0]}[{peer[1]}]"
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.1,
            relay,
            f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
        )
        frm = "security@paypa1-support.com"  # other senders through the stolen login
        for _ in range(3):
            t += rng.uniform(5, 30)
            self.emit(
                t,
                relay,
                f"{smtpd}: NOQUEUE: reject: RCPT from {client}: 553 5.7.1 <{frm}>: "
                f"Sender address rejected: not owned by user {victim.login}; "
                f"from=<{frm}> to=<{self.random_address()[0]}> proto=ESMTP "
                "helo=<User>",
                frm,
                AUTH_BLK,
                REJECTED,
            )
        self.emit(
            t + 0.5,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=2 starttls=1 auth=1 "
            "mail=3 rcpt=0/3 quit=1 commands=8/11",
        )
        self.brute_force(t + 1800, relay, username=victim.login, peer=peer)

    def noise(self, d: int, relay: Relay, scale: float) -> None:
        start, rng = self.clock.starts[d], self.rng
        # a relay's share of the traffic (1.0 when even) makes its own noise busier or quieter
        for slot in range(144):  # anvil's statistics every 10 minutes of activity
            if rng.random() < 0.5 * relay.share:
                self.anvil(start + slot * 600 + rng.uniform(0, 30), relay)
        for _ in range(round((5 + round(10 * scale)) * relay.share)):
            self.postscreen(start + rng.uniform(0, 86390), relay)
        for _ in range(rng.randint(3, 10)):
            self.warning(start + rng.uniform(0, 86390), relay)

    def anvil(self, t: float, relay: Relay) -> None:
        rng, prog = self.rng, relay.proc("anvil")
        then = self.clock.classic(t - rng.uniform(60, 590))
        ip = f"140.114.{rng.randint(1, 250)}.{rng.randint(2, 254)}"
        self.emit(
            t,
            relay,
            f"{prog}: statistics: max connection rate {rng.randint(1, 12)}/60s "
            f"for (submission:{ip}) at {then}",
        )
        self.emit(
            t,
            relay,
            f"{prog}: statistics: max connection count {rng.randint(1, 4)} for "
            f"(smtp:{ip}) at {then}",
        )
        self.emit(t, relay, f"{prog}: statistics: max cache size {rng.randint(1, 30)} at {then}")

    def postscreen(self, t: float, relay: Relay) -> None:
        """An Internet host at port 25: passed, hung up, or blocklisted and refused."""
        rng = self.rng
        _, ip = self.attacker()
        peer = f"[{ip}]:{rng.randint(20000, 65000)}"
        prog = relay.proc("postscreen")
        self.emit(t, relay, f"{prog}: CONNECT from {peer} to [{relay.ip}]:25")
        r = rng.random()
        if r < 0.4:
            self.emit(t + 0.1, relay, f"{prog}: PASS OLD {peer}")
            smtpd = relay.new_proc("smtpd")
            self.emit(t + 0.12, relay, f"{smtpd}: connect from unknown[{ip}]")
            self.emit(
                t + 2.5, relay, f"{smtpd}: disconnect from unknown[{ip}] ehlo=1 quit=1 commands=2"
            )
        elif r < 0.7:
            self.emit(
                t + 6,
                relay,
                f"{prog}: HANGUP after {rng.uniform(0.1, 6):.2g} from {peer} "
                "in tests before SMTP handshake",
            )
            self.emit(t + 6, relay, f"{prog}: DISCONNECT {peer}")
        else:
            rank = rng.randint(3, 7)
            listed = f"127.0.0.{rng.choice((2, 3, 4, 9))}"
            self.emit(
                t + 0.05,
                relay,
                f"{relay.proc('dnsblog')}: addr {ip} listed by domain zen.spamhaus.org as {listed}",
            )
            self.emit(t + 6, relay, f"{prog}: DNSBL rank {rank} for {peer}")
            to = self.random_address()[0]
            frm = rng.choice(SPAM_FROM)
            self.emit(
                t + 7,
                relay,
                f"{prog}: NOQUEUE: reject: RCPT from {peer}: 550 5.7.1 Service "
                f"unavailable; client [{ip}] blocked using zen.spamhaus.org; "
                f"from=<{frm}>, to=<{to}>, proto=ESMTP, "
                f"helo=<{rng.choice(GIVEN)}-pc>",
                frm,
                AUTH_BLK,
                REJECTED,
            )
            self.emit(t + 7.2, relay, f"{prog}: DISCONNECT {peer}")

    def warning(self, t: float, relay: Relay) -> None:
        rng = self.rng
        name, ip = self.attacker()
        smtpd = relay.new_proc("smtpd")
        kind = rng.randrange(4)
        if kind == 0:
            self.emit(
                t,
                relay,
                f"{smtpd}: warning: hostname {ip.replace('.', '-')}.dynamic."
                f"example.net does not resolve to address {ip}: Name or service "
                "not known",
            )
        elif kind == 1:
            self.emit(
                t, relay, f"{smtpd}: warning: non-SMTP command from unknown[{ip}]: GET / HTTP/1.1"
            )
        elif kind == 2:
            self.emit(t, relay, f"{smtpd}: lost connection after EHLO from {name}[{ip}]")
        else:
            self.emit(
                t,
                relay,
                f"{relay.proc('smtp')}: warning: TLS library problem: "
                "error:0A000126:SSL routines::unexpected eof while reading:"
                "../ssl/record/rec_layer_s3.c:317:",
            )
