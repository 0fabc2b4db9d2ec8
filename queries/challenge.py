"""The captcha's challenge: six plain digits, easy to read and to hear (flite reads each)."""

from __future__ import annotations

import secrets
import string

from django.conf import settings


def digits_challenge() -> tuple[str, str]:
    """What the image shows and the answer expected: the same digits."""
    code = "".join(secrets.choice(string.digits) for _ in range(settings.CAPTCHA_LENGTH))
    return code, code
