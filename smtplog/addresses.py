"""Envelope addresses as the store keeps them.

Plain Python (no Django import): the correlator (smtplog.ingest.correlate) and the
models' querysets share this one rule, so what ingestion stores and what a report asks
for are written the same way.
"""

from __future__ import annotations

NULL_SENDER = "<>"
MAX_LENGTH = 320  # the longest address column: RFC 5321's 64 + 1 + 255, with room


def normalize_address(address: str) -> str:
    """An envelope address as stored: trimmed, without angle brackets, lower-case.

    The null sender stays "<>" (it belongs to nobody and is never counted). A longer
    value than any address (junk in a log line) is cut at MAX_LENGTH, the same way each
    time, so it never fails a write.
    """
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    if not address:
        return NULL_SENDER
    return address[:MAX_LENGTH].lower()
