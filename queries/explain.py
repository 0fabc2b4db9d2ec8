"""Plain-language explanations of the replies a report shows (RFC 3463 enhanced status codes).

An exact code is explained when we know it; otherwise its class and subject
(X.Y.*) are. A few cases are told apart by the reply text: greylisting and rate limits
(both 4.7.x), Microsoft's 5.4.1 "Access denied", SASL failures and the relay's own rejects;
and a "bounced" row with a 2.x.x reply is the content filter's discard
(docs/counting-rules.md).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
BASIC = re.compile(r"^\s*\(?([245])\d\d\b")

EXACT: dict[str, Promise] = {
    "2.0.0": _(
        "Delivered: the receiving server accepted the message. What happens to it "
        "afterwards (inbox, spam folder) is up to that server."
    ),
    "2.6.0": _("Delivered: the receiving server accepted the message."),
    "4.2.2": _(
        "The recipient's mailbox is full for now. The relay keeps retrying; if the "
        "recipient does not make room within a few days the message bounces."
    ),
    "4.4.1": _(
        "The receiving server did not answer or the connection timed out. The relay "
        "keeps retrying; nothing for you to do unless it finally expires."
    ),
    "4.4.2": _("The connection to the receiving server broke off. The relay retries later."),
    "4.4.3": _(
        "The recipient's domain could not be looked up for now (a DNS problem). "
        "The relay retries later."
    ),
    "5.1.1": _(
        "The recipient address does not exist. Check its spelling; the message was not delivered."
    ),
    "5.1.2": _(
        "The recipient's domain does not exist or does not receive mail. Check the "
        "part after the @."
    ),
    "5.1.10": _(
        'The recipient\'s domain says it accepts no mail at all (a "null MX"). '
        "The address is most likely mistyped or no longer used."
    ),
    "5.2.1": _(
        "The recipient's mailbox is disabled or does not accept messages. The "
        "message was not delivered."
    ),
    "5.2.2": _(
        "The recipient's mailbox is full and the receiving server gave up. Reach "
        "the recipient another way."
    ),
    "5.3.4": _(
        "The message is larger than the receiving server accepts. Send smaller "
        "attachments or a link instead."
    ),
    "5.4.1": _(
        'The receiving server refused the recipient ("access denied"): for '
        "Microsoft 365 this usually means the address does not exist there."
    ),
    "5.4.4": _("The recipient's domain has no mail server that can be reached."),
    "5.7.1": _(
        "The receiving server refused the message by its policy: it may consider "
        "the message spam, or not accept mail from our relay or this sender."
    ),
    "5.7.26": _(
        "The message failed the sender domain's authentication checks (SPF, DKIM "
        "or DMARC) at the receiving server. If you sent it through another "
        "provider with a campus address, send it through the campus relay."
    ),
}

SPECIAL: dict[str, tuple[str, Promise]] = {
    "greylist": (
        _("4.7.x greylisting"),
        _(
            "Greylisting: the receiving server turns away the first attempt from a "
            "new sender on purpose and accepts a retry a few minutes later. Normal; "
            "the relay retries by itself."
        ),
    ),
    "rate": (
        _("4.7.x rate limit"),
        _(
            "Rate limit: the receiving server is accepting fewer messages from our relay "
            "or from you for a while. The relay retries; sending fewer messages at once "
            "helps."
        ),
    ),
    "sasl": (
        _("authentication failed"),
        _(
            "Someone tried to log in to the campus relay (SMTP AUTH) as you with a wrong "
            "password. If this was not you, change your password now."
        ),
    ),
    "discarded": (
        _("discarded by the content filter"),
        _(
            "The campus relay's content filter (its virus and spam check) took the message "
            "and dropped it: it reached nobody, and no bounce message comes back to you. "
            "The reply says why: BANNED means an attachment of a kind that is not allowed "
            "(such as .exe), INFECTED a virus, SPAM that it was taken for spam. Send it "
            "again without that attachment, or ask the mail administrators."
        ),
    ),
    "reject": (
        _("rejected by the relay"),
        _(
            "The campus relay itself refused the message before accepting it; the "
            "reason is in the text. A message refused here was never sent."
        ),
    ),
}

CLASSES: dict[str, Promise] = {
    "2": _("Success: the step was completed."),
    "4": _("A temporary failure: the relay keeps the message and tries again later."),
    "5": _(
        "A permanent failure: the message was not delivered to this recipient, and you "
        "should receive a non-delivery notice."
    ),
}

SUBJECTS: dict[str, Promise] = {
    "1": _("a problem with the address"),
    "2": _("a problem with the recipient's mailbox"),
    "3": _("a problem with the receiving mail system"),
    "4": _("a problem with the network or routing"),
    "5": _("a problem with the mail protocol"),
    "6": _("a problem with the message content"),
    "7": _("a security or policy refusal"),
}


@dataclass(frozen=True)
class Explanation:
    code: str
    text: str


def code_of(dsn: str, response: str) -> str:
    if CODE.fullmatch(dsn or ""):
        return dsn
    found = CODE.search(response or "")
    return found.group(0) if found else ""


@functools.cache
def needs_text(status: str, dsn: str) -> bool:
    """Whether key_of() needs the reply text, or the status and code settle it."""
    return status == "auth_blk" or not CODE.fullmatch(dsn or "") or dsn.startswith("4.7.")


def key_of(status: str, dsn: str, response: str) -> str:
    """The explanation a row needs: a code, a special case, or a basic reply class."""
    text = (response or "").lower()
    if status == "auth_blk":
        return "sasl" if "authentication failed" in text else "reject"
    code = code_of(dsn, response)
    if status == "bounced" and code.startswith("2."):
        return "discarded"  # a success reply, yet nothing delivered: the filter dropped it
    if code.startswith("4.7."):
        if "grey" in text or "gray" in text:
            return "greylist"
        if "rate" in text or "too many" in text or "limit" in text:
            return "rate"
    if code:
        return code
    basic = BASIC.search(response or "")
    return basic.group(1) if basic else ""


def explain(keys: set[str]) -> list[Explanation]:
    """Explanations of the keys met, codes first in numeric order, then special cases."""
    codes = sorted(
        (k for k in keys if k and k not in SPECIAL),
        key=lambda k: tuple(int(p) for p in k.split(".")),
    )
    result = [Explanation(k, str(_text(k))) for k in codes]
    result += [Explanation(str(SPECIAL[k][0]), str(SPECIAL[k][1])) for k in SPECIAL if k in keys]
    return result


def _text(code: str) -> str:
    if code in EXACT:
        return str(EXACT[code])
    parts = code.split(".")
    meaning = CLASSES[parts[0]]
    if len(parts) > 1 and parts[1] in SUBJECTS:
        return _("%(meaning)s Kind: %(subject)s.") % {
            "meaning": meaning,
            "subject": SUBJECTS[parts[1]],
        }
    return str(meaning)
