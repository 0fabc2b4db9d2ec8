"""What remote servers answer: accepted, deferred and bounced replies in each server's style,
Postfix's ``delays=`` figures, and smtpd's end-of-session counters.
"""

from __future__ import annotations

import random

from smtplog.sample.cluster import Domain

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _fmt_delay(x: float) -> str:
    """Postfix's delay format: two significant digits, whole seconds from 10 s on."""
    if x >= 10:
        return str(int(x))
    text = f"{x:.1f}" if x >= 1 else f"{x:.2f}"
    if text[-1] != "0":
        return text
    return text.rstrip("0").rstrip(".") or "0"


def _delays(total: float, a: float, b: float, c: float) -> str:
    d = max(total - a - b - c, 0.0)
    return (
        f"delay={_fmt_delay(total)}, delays={_fmt_delay(a)}/{_fmt_delay(b)}/"
        f"{_fmt_delay(c)}/{_fmt_delay(d)}"
    )


def _gsmtp(rng: random.Random) -> str:
    """Gmail's transaction id, as in ``c34si2363086pgm.445 - gsmtp``."""
    n = rng.getrandbits(64)
    a, b, c, d = (n >> 8) % 26, (n >> 16) % 26, (n >> 24) % 26, (n >> 32) % 26
    return (
        f"{LETTERS[n % 26]}{10 + (n >> 40) % 90}si{1000000 + (n >> 20) % 9000000}"
        f"{LETTERS[a]}{LETTERS[b]}{LETTERS[c]}.{100 + d * 31 % 900} - gsmtp"
    )


def _ok_reply(style: str, t: float, rng: random.Random) -> str:
    if style == "gmail":
        return f"250 2.0.0 OK  {int(t)} {_gsmtp(rng)}"
    if style == "outlook":
        host = f"TYZPR0{rng.randint(1, 6)}MB{rng.randint(1000, 9999)}.apcprd0{rng.randint(1, 6)}"
        return (
            f"250 2.6.0 <{rng.getrandbits(64):016X}@{host}.prod.outlook.com> "
            f"[InternalId={rng.randint(10**12, 10**13)}, Hostname={host}.prod.outlook.com] "
            f"{rng.randint(2000, 90000)} bytes in {rng.uniform(0.05, 0.6):.3f}, "
            f"{rng.uniform(20, 300):.3f} KB/sec Queued mail for delivery"
        )
    if style == "yahoo":
        return "250 ok dirdel"
    if style == "postfix":
        return f"250 2.0.0 Ok: queued as {rng.getrandbits(40):010X}"
    if style == "qq":
        return "250 OK: queued as."
    if style == "exim":
        return (
            f"250 OK id=1{rng.choice('rst')}{rng.getrandbits(20):05X}-000"
            f"{rng.randint(1, 9)}Ab-{rng.randint(10, 99)}"
        )
    return "250 2.0.0 Ok"


def _deferral(
    kind: str, dom: Domain, hp: str, addr: str, relay_ip: str, rng: random.Random
) -> tuple[str, str, str]:
    """(relay field, dsn, reason) of a temporary failure of the given kind."""
    said = f"host {hp} said:"
    if kind == "timeout":
        return "none", "4.4.1", f"connect to {hp}:25: Connection timed out"
    if kind == "dns":
        return (
            "none",
            "4.4.3",
            f"Host or domain name not found. Name service error for "
            f"name={dom.name} type=MX: Host not found, try again",
        )
    if kind == "lost":
        return (
            f"{hp}:25",
            "4.4.2",
            f"lost connection with {hp} while receiving the initial server greeting",
        )
    if kind == "tss":
        return (
            f"{hp}:25",
            "4.7.0",
            f"{said} 421 4.7.0 [TSS04] Messages from {relay_ip} "
            "temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; "
            "see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)",
        )
    if kind == "ratelimit":
        return (
            f"{hp}:25",
            "4.7.0",
            f"{said} 421-4.7.0 [{relay_ip}      15] Our system has "
            "detected an unusual rate of 421-4.7.0 unsolicited mail originating from your IP "
            "address. To protect our 421-4.7.0 users from spam, mail sent from your IP address "
            "has been temporarily 421-4.7.0 rate limited. For more information, go to 421 4.7.0"
            f"  https://support.google.com/mail/?p=UnsolicitedRateLimitError {_gsmtp(rng)} "
            "(in reply to end of DATA command)",
        )
    if kind == "quota" and dom.style == "gmail":
        return (
            f"{hp}:25",
            "4.2.2",
            f"{said} 452-4.2.2 The recipient's inbox is out of storage "
            "space. Please direct the 452-4.2.2 recipient to 452 4.2.2  "
            f"https://support.google.com/mail/?p=OverQuotaTemp {_gsmtp(rng)} "
            "(in reply to RCPT TO command)",
        )
    if kind == "quota":
        return (
            f"{hp}:25",
            "4.2.2",
            f"{said} 452 4.2.2 <{addr}>: Mailbox is full (in reply to RCPT TO command)",
        )
    if dom.style == "exim":
        return (
            f"{hp}:25",
            "4.7.1",
            f"{said} 451 4.7.1 Greylisting in action, please come back "
            "later (in reply to RCPT TO command)",
        )
    return (
        f"{hp}:25",
        "4.2.0",
        f"{said} 450 4.2.0 <{addr}>: Recipient address rejected: "
        f"Greylisted, see http://postgrey.schweikert.ch/help/{dom.name}.html "
        "(in reply to RCPT TO command)",
    )


def _bounce(
    kind: str,
    dom: Domain,
    hp: str,
    addr: str,
    relay_ip: str,
    sender_domain: str,
    rng: random.Random,
) -> tuple[str, str, str]:
    """(relay field, dsn, reason) of a permanent failure of the given kind."""
    said = f"host {hp} said:"
    if kind == "nxdomain":
        return (
            "none",
            "5.4.4",
            f"Host or domain name not found. Name service error for "
            f"name={dom.name} type=AAAA: Host not found",
        )
    if kind == "dmarc":
        return (
            f"{hp}:25",
            "5.7.26",
            f"{said} 550-5.7.26 Unauthenticated email from "
            f"{sender_domain} is not accepted due to domain's 550-5.7.26 DMARC policy. Please "
            f"contact the administrator of {sender_domain} domain 550-5.7.26 if this was a "
            "legitimate mail. To learn about the DMARC initiative, go 550-5.7.26 to 550 "
            f"5.7.26  https://support.google.com/mail/answer/2451690 {_gsmtp(rng)} "
            "(in reply to end of DATA command)",
        )
    if kind == "denied":
        return (
            f"{hp}:25",
            "5.4.1",
            f"{said} 550 5.4.1 Recipient address rejected: Access "
            "denied. For more information see https://aka.ms/EXOSmtpErrors "
            f"[TY2PEPF0000AB8{rng.randint(0, 9)}.apcprd03.prod.outlook.com] "
            "(in reply to RCPT TO command)",
        )
    if kind == "full":
        return (
            f"{hp}:25",
            "5.2.2",
            f"{said} 552 5.2.2 <{addr}>: Mailbox full (in reply to RCPT TO command)",
        )
    if kind == "spamblock":
        return (
            f"{hp}:25",
            "5.7.1",
            f"{said} 550 5.7.1 Unfortunately, messages from [{relay_ip}] "
            "weren't sent. Please contact your Internet service provider since part of their "
            "network is on our block list (S3150). You can also refer your provider to "
            "http://mail.live.com/mail/troubleshooting.aspx#errors. "
            f"[SG2PEPF000{rng.randint(10000, 99999)}.apcprd02.prod.outlook.com] "
            "(in reply to MAIL FROM command)",
        )
    if kind == "policy":
        return (
            f"{hp}:25",
            "5.7.1",
            f"{said} 550-5.7.1 [{relay_ip}      12] Our system has "
            "detected that this message is 550-5.7.1 likely unsolicited mail. To reduce the "
            "amount of spam sent to Gmail, 550-5.7.1 this message has been blocked. For more "
            "information, go to 550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessage"
            f"Error {_gsmtp(rng)} (in reply to end of DATA command)",
        )
    if dom.style == "gmail":
        return (
            f"{hp}:25",
            "5.1.1",
            f"{said} 550-5.1.1 The email account that you tried to "
            "reach does not exist. Please try 550-5.1.1 double-checking the recipient's email "
            "address for typos or 550-5.1.1 unnecessary spaces. For more information, go to "
            f"550 5.1.1  https://support.google.com/mail/?p=NoSuchUser {_gsmtp(rng)} "
            "(in reply to RCPT TO command)",
        )
    if dom.style == "yahoo":
        return (
            f"{hp}:25",
            "5.0.0",
            f"{said} 554 delivery error: dd This user doesn't have a "
            f"{dom.name} account ({addr}) [0] - mta{rng.randint(4000, 4999)}.mail.gq1.yahoo.com"
            " (in reply to end of DATA command)",
        )
    if dom.style == "outlook":
        return (
            f"{hp}:25",
            "5.5.0",
            f"{said} 550 5.5.0 Requested action not taken: mailbox "
            "unavailable (S2017062302). [SG1PEPF000082E5.apcprd02.prod.outlook.com] "
            "(in reply to RCPT TO command)",
        )
    return (
        f"{hp}:25",
        "5.1.1",
        f"{said} 550 5.1.1 <{addr}>: Recipient address rejected: "
        "User unknown in local recipient table (in reply to RCPT TO command)",
    )


def _counters(sasl: bool, mails: int, rcpt_ok: int, rcpt_all: int, auth_failed: int) -> str:
    """The ``disconnect from`` counters of a session (``name=ok/total`` when some failed)."""
    parts = [("ehlo", 2, 2)] if sasl else [("ehlo", 1, 1)]
    if sasl:
        parts += [("starttls", 1, 1), ("auth", 1, 1 + auth_failed)]
    parts += [
        ("mail", mails, mails),
        ("rcpt", rcpt_ok, rcpt_all),
        ("data", mails, mails),
        ("quit", 1, 1),
    ]
    ok = total = 0
    words = []
    for name, good, tried in parts:
        ok, total = ok + good, total + tried
        words.append(f"{name}={good}" if good == tried else f"{name}={good}/{tried}")
    words.append(f"commands={ok}" if ok == total else f"commands={ok}/{total}")
    return " ".join(words)
