"""Recipients and their fates, message IDs (a mixin of Simulation)."""

from __future__ import annotations

import random

from smtplog.sample.campus import GIVEN, RCPT_COUNTS, RCPT_CUMULATIVE, SURNAMES, WEBMAIL
from smtplog.sample.cluster import Domain, Rcpt, Sender


class _Recipients:
    """Who gets mail and what happens to it; mixed into Simulation."""

    rng: random.Random
    domains: list[Domain]
    domain_weights: list[float]
    by_name: dict[str, Domain]

    def recipients(self, sender: Sender, bulk: bool) -> list[Rcpt]:
        rng = self.rng
        if bulk or rng.random() < 0.004:
            n = rng.randint(45, 60) if bulk else rng.randint(20, 60)
        else:
            n = rng.pick(RCPT_COUNTS, RCPT_CUMULATIVE)
        contacts = sender.contacts or self.contacts(sender)
        out, seen = [], set()
        if sender.stale and rng.random() < 0.05:
            addr, dom = rng.choice(sender.stale)
            seen.add(addr)
            out.append(self.fate(addr, dom, sender, False))
        for _ in range(n - len(out)):
            addr, dom = (
                rng.choice(contacts) if n <= 5 and rng.random() < 0.75 else self.random_address()
            )
            if addr not in seen:
                seen.add(addr)
                out.append(self.fate(addr, dom, sender, bulk or n > 5))
        return out

    def contacts(self, sender: Sender) -> list[tuple[str, Domain]]:
        """The few addresses a sender writes to most."""
        sender.contacts = [self.random_address(live=True) for _ in range(self.rng.randint(4, 20))]
        if sender.key == "lab-server@phys.nthu.edu.tw":  # a stale address and a dead host
            sender.stale = [
                ("former.ta@phys.nthu.edu.tw", self.domain_of("phys.nthu.edu.tw")),
                ("alerts@oldlab-mail.com.tw", self.by_name["oldlab-mail.com.tw"]),
            ]
        return sender.contacts

    def random_address(self, live: bool = False) -> tuple[str, Domain]:
        """A plausible address anywhere (`live`: at a domain that accepts mail)."""
        rng = self.rng
        dom = rng.pick(self.domains, self.domain_weights)
        while live and dom.mode != "ok":
            dom = rng.pick(self.domains, self.domain_weights)
        r = rng.random()
        if r < 0.4:
            local = f"{rng.choice(GIVEN)}.{rng.choice(SURNAMES)}"
        elif r < 0.7:
            local = f"{rng.choice(GIVEN)}{rng.choice(SURNAMES)}{rng.randint(1, 2005)}"
        elif dom.name.endswith("nthu.edu.tw"):
            local = f"s{rng.randint(107, 113)}{rng.randint(0, 99):02d}{rng.randint(1000, 9999)}"
        else:
            local = f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)[0]}{rng.randint(10, 99)}"
        return f"{local}@{dom.name}", dom

    def domain_of(self, address: str) -> Domain:
        """The destination of any address (campus subdomains go to the campus mailbox host)."""
        name = address.rsplit("@", 1)[-1].lower()
        dom = self.by_name.get(name)
        if dom is None:
            if name.endswith("nthu.edu.tw"):
                dom = Domain(
                    name, "mx.nthu.edu.tw", ("140.114.64.25", "140.114.64.26"), "postfix", "ok"
                )
            else:
                rng = self.rng
                ip = f"{rng.randint(60, 210)}.{rng.randint(1, 254)}.1.{rng.randint(2, 254)}"
                dom = Domain(name, f"mx.{name}", (ip,), "generic", "ok")
            self.by_name[name] = dom
        return dom

    def fate(self, addr: str, dom: Domain, sender: Sender, bulk: bool) -> Rcpt:
        """Decide now how every attempt to deliver to `addr` will end."""
        rng = self.rng
        r = rng.random()
        if dom.mode == "typo":
            return Rcpt(addr, dom, 0, "bounced", "", "nxdomain")
        if dom.mode == "dead":  # most never answer again; some come back after hours
            if r < 0.6:
                return Rcpt(addr, dom, 10**9, "expire", "timeout", "")
            return Rcpt(addr, dom, rng.randint(2, 12), "sent", "timeout", "")
        if addr.startswith("former.") or r < (0.05 if bulk else 0.015):
            return Rcpt(addr, dom, 0, "bounced", "", "nouser")
        if sender.kind == "forward" and dom.style == "gmail" and r < 0.3:
            return Rcpt(addr, dom, 0, "bounced", "", "dmarc")
        if dom.style == "outlook" and r < 0.02:
            return Rcpt(addr, dom, 0, "bounced", "", "denied")
        if dom.style == "yahoo" and r < 0.12:
            return Rcpt(addr, dom, rng.randint(1, 4), "sent", "tss", "")
        if dom.style in ("postfix", "exim", "generic") and r < 0.03:
            return Rcpt(addr, dom, 1, "sent", "greylist", "")
        return self.rare_fate(addr, dom, rng.random())

    def rare_fate(self, addr: str, dom: Domain, r: float) -> Rcpt:
        rng = self.rng
        if r < 0.004:  # a full mailbox: emptied later, or given up on
            left, end = rng.randint(2, 15), rng.random()
            if end < 0.5:
                return Rcpt(addr, dom, left, "sent", "quota", "")
            if end < 0.85:
                return Rcpt(addr, dom, left, "bounced", "quota", "full")
            return Rcpt(addr, dom, 10**9, "expire", "quota", "")
        if r < 0.009:
            return Rcpt(addr, dom, 1, "sent", "lost", "")
        if r < 0.011:
            return Rcpt(addr, dom, rng.randint(1, 2), "sent", "dns", "")
        return Rcpt(addr, dom, 0, "sent", "", "")

    def hostile_recipients(self) -> list[Rcpt]:
        """A spam run from a stolen account: webmail users, mostly refused."""
        rng, out = self.rng, []
        for _ in range(rng.randint(20, 50)):
            addr, dom = self.random_address()
            if dom.style == "outlook":
                bkind = "spamblock" if rng.random() < 0.6 else "nouser"
                out.append(Rcpt(addr, dom, 0, "bounced", "", bkind))
            elif dom.style == "gmail":
                r = rng.random()
                if r < 0.3:
                    out.append(Rcpt(addr, dom, 0, "bounced", "", "nouser"))
                elif r < 0.5:
                    out.append(Rcpt(addr, dom, 0, "bounced", "", "policy"))
                elif r < 0.65:
                    out.append(Rcpt(addr, dom, rng.randint(1, 3), "bounced", "ratelimit", "policy"))
                else:
                    out.append(Rcpt(addr, dom, 0, "sent", "", ""))
            elif dom.style == "yahoo":
                out.append(Rcpt(addr, dom, rng.randint(1, 5), "sent", "tss", ""))
            else:
                out.append(self.fate(addr, dom, self.senders[0], True))
        return out

    def message_id(self, sender: Sender, t: float) -> str:
        rng = self.rng
        if sender.kind == "webmail":
            return f"{rng.getrandbits(128):032x}@{WEBMAIL[0]}"
        if sender.kind == "server":
            return f"{int(t)}.{rng.randint(1000, 99999)}.{rng.getrandbits(32):08x}@{sender.client}"
        if sender.kind == "forward":
            return f"CA+{rng.getrandbits(160):040x}@mail.gmail.com"
        u = rng.getrandbits(128)
        return (
            f"{u >> 96:08x}-{(u >> 80) & 0xFFFF:04x}-{(u >> 64) & 0xFFFF:04x}-"
            f"{(u >> 48) & 0xFFFF:04x}-{u & 0xFFFFFFFFFFFF:012x}@{sender.domain}"
        )
