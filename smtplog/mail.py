"""An email backend that writes each message as its own .eml file.

The laptop default: open var/mail/*.eml in any mail program to see what would be sent.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmlFileBackend(BaseEmailBackend):
    def __init__(self, file_path=None, **kwargs):
        super().__init__(**kwargs)
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
            (self.directory / name).write_bytes(message.message().as_bytes(linesep="\n"))
        return len(email_messages)
