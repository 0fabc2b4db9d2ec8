#!/usr/bin/env python3
"""Compile gettext catalogs (.po -> .mo) without GNU gettext.

`manage.py compilemessages` needs GNU msgfmt, which a fresh machine with only
Python may lack. This is the logic of CPython's Tools/i18n/msgfmt.py, trimmed to
what Django reads: contexts (msgctxt), plural forms, fuzzy entries skipped (the
header is kept even when fuzzy, as GNU msgfmt does, so Plural-Forms survives).
It compiles locale/*/LC_MESSAGES/*.po and */locale/*/LC_MESSAGES/*.po under the
repository and writes each .mo beside its .po.

Usage: python scripts/compile_po.py [REPO_DIR]
"""

from __future__ import annotations

import array
import ast
import email.parser
import struct
import sys
from pathlib import Path

PATTERNS = ("locale/*/LC_MESSAGES/django*.po", "*/locale/*/LC_MESSAGES/django*.po")


def parse_po(data: bytes, name: str) -> dict[bytes, bytes]:
    """Translated entries of a .po file as .mo keys and values."""
    messages: dict[bytes, bytes] = {}
    encoding = "latin-1"  # until the header names the real charset
    section = ctxt = None
    msgid = msgstr = b""
    forms: list[bytes] = []
    fuzzy = plural = False

    def add() -> None:
        nonlocal encoding
        values = forms if plural else [msgstr]
        if msgid == b"" and ctxt is None:  # the header: keep it and learn the charset
            header = email.parser.HeaderParser().parsestr(msgstr.decode(encoding))
            encoding = header.get_content_charset() or encoding
        elif fuzzy or not values[0]:  # untranslated, as GNU msgfmt judges it
            return
        key = msgid if ctxt is None else ctxt + b"\x04" + msgid
        messages[key] = b"\0".join(values)

    for lno, raw in enumerate(data.splitlines(), 1):
        if section == "str" and raw.lstrip().startswith((b"#", b"msgctxt", b"msgid ")):
            add()  # a comment or a new entry ends the previous one (the header sets encoding)
            section, ctxt, fuzzy = None, None, False
        line = raw.decode(encoding).strip()
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue  # comments, including obsolete "#~" entries
        if line.startswith("msgctxt"):
            section, ctxt, line = "ctxt", b"", line[7:]
        elif line.startswith("msgid_plural"):
            plural, line = True, line[12:]
            msgid += b"\0"  # singular and plural ids are stored NUL-separated
            section = "plural"
        elif line.startswith("msgid"):
            section, msgid, msgstr, forms, plural, line = "id", b"", b"", [], False, line[5:]
        elif line.startswith("msgstr["):
            section, line = "str", line.split("]", 1)[1]
            forms.append(b"")
        elif line.startswith("msgstr"):
            section, line = "str", line[6:]
        line = line.strip()
        if not line:
            continue
        try:
            text = ast.literal_eval(line).encode(encoding)
        except (ValueError, SyntaxError) as exc:
            raise SystemExit(f"{name}:{lno}: cannot read {line!r} ({exc})") from None
        if section == "ctxt":
            ctxt += text
        elif section in ("id", "plural"):
            msgid += text
        elif section == "str" and plural:
            forms[-1] += text
        elif section == "str":
            msgstr += text
        else:
            raise SystemExit(f"{name}:{lno}: text outside an entry")
    if section == "str":
        add()
    return messages


def mo_bytes(messages: dict[bytes, bytes]) -> bytes:
    """The .mo layout: header, key index, value index, keys, values (no hash table)."""
    keys = sorted(messages)
    ids = strs = b""
    offsets = []
    for key in keys:
        offsets.append((len(ids), len(key), len(strs), len(messages[key])))
        ids += key + b"\0"
        strs += messages[key] + b"\0"
    key_start = 7 * 4 + 16 * len(keys)
    value_start = key_start + len(ids)
    key_index: list[int] = []
    value_index: list[int] = []
    for id_offset, id_len, str_offset, str_len in offsets:
        key_index += [id_len, id_offset + key_start]
        value_index += [str_len, str_offset + value_start]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0)
    return header + array.array("i", key_index + value_index).tobytes() + ids + strs


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent)
    catalogs = sorted({po for pattern in PATTERNS for po in root.glob(pattern)})
    for po in catalogs:
        po.with_suffix(".mo").write_bytes(mo_bytes(parse_po(po.read_bytes(), str(po))))
    sys.stdout.write(f"compiled {len(catalogs)} catalog(s) without msgfmt\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
