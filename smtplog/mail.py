"""Email backends: .eml files on a laptop, SMTP with a deadline in production."""

from __future__ import annotations

import contextlib
import functools
import smtplib
import socket
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend
from django.utils import timezone


class EmlFileBackend(BaseEmailBackend):
    """Each message as its own .eml file: open var/mail/*.eml in any mail program."""

    def __init__(self, file_path=None, **kwargs):
        super().__init__(**kwargs)
        self.directory = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
            (self.directory / name).write_bytes(message.message().as_bytes(linesep="\n"))
        return len(email_messages)


class SendDeadlineExceeded(TimeoutError):
    """The SMTP conversation outlasted EMAIL_SEND_DEADLINE (a transient failure)."""


class _Watchdog:
    """Cuts the watched connection's socket once the deadline of a send has passed.

    shutdown() wakes whatever read or write is waiting on the socket, and smtplib then
    fails that command; the watchdog keeps cutting until the send gives up, so a socket
    made after the deadline (in the middle of connecting) is cut too.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.connection: smtplib.SMTP | None = None
        self.expired = False

    @contextlib.contextmanager
    def running(self):
        self.expired = False
        done = threading.Event()
        thread = threading.Thread(target=self._watch, args=(done,), name="smtp-deadline")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _watch(self, done: threading.Event) -> None:
        if done.wait(self.seconds):
            return
        self.expired = True
        while not done.is_set():
            sock = getattr(self.connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            done.wait(0.1)


class _Watched:
    """An smtplib connection that shows itself to the watchdog before it connects."""

    def __init__(self, *args, watchdog: _Watchdog, **kwargs) -> None:
        self.watchdog = watchdog
        super().__init__(*args, **kwargs)

    def connect(self, *args, **kwargs):
        self.watchdog.connection = self
        return super().connect(*args, **kwargs)


class _WatchedSMTP(_Watched, smtplib.SMTP):
    pass


class _WatchedSMTPSSL(_Watched, smtplib.SMTP_SSL):
    pass


class SMTPBackend(EmailBackend):
    """Django's SMTP backend with one deadline on each send, connect to QUIT.

    EMAIL_TIMEOUT bounds each socket read or write, not the conversation: a server
    sending a byte every few seconds held a send until the task's time limit. Here a
    send still going after EMAIL_SEND_DEADLINE seconds has its socket shut down and
    fails with SendDeadlineExceeded, a TimeoutError, which the senders retry.
    """

    def __init__(self, *args, deadline: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog = _Watchdog(settings.EMAIL_SEND_DEADLINE if deadline is None else deadline)

    @property
    def connection_class(self):
        watched = _WatchedSMTPSSL if self.use_ssl else _WatchedSMTP
        return functools.partial(watched, watchdog=self.watchdog)

    def send_messages(self, email_messages) -> int:
        with self.watchdog.running():
            try:
                return super().send_messages(email_messages)
            except (smtplib.SMTPException, OSError):
                if self.watchdog.expired:
                    raise SendDeadlineExceeded(
                        f"the SMTP conversation took over {self.watchdog.seconds} s"
                    ) from None
                raise
