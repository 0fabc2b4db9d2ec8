"""A central log read once: the rest's worker hands each relay read apart its lines.

Side by side, a central log is read by a worker for each of its largest relays (their
RelayPart positions) and one for the rest (the file's own position). Reading and
sharing out every line of the file cost each of them about 1.2 s of a month of
1.5 million lines (bench/ingest.py); the largest relay's worker sets the run's pace. So
the rest's worker, which has the least to parse, reads the file alone and sends each
relay read apart its lines, batch by batch, with the positions and tails the relay's
worker commits with them: what that worker commits is what it would have committed
reading the file itself, and a kill at any point leaves the same positions.

Per file, in the order both workers read their files (rotation order):

* the feeder sends ("open", path, start) when it reads the file from `start` and the
  relay's part stands there too, or ("skip", path) when it does not hand out its lines;
* then ("lines", lines, position, tail) for each batch (the relay's lines joined by
  newlines; the position after the batch; the tail hash of the batch's last line),
  and ("end", whole): whole when it read the file to its end;
* a relay's worker that is not handed a file whole (skip, or an end that is not whole,
  or the feeder gone: end of file on the pipe) reads it on itself from where it stands.

A pipe per relay read apart (no Django here; the workers are forked with both ends,
and each closes the ends it does not use, so that a dead feeder is an end of file and a
dead reader a broken pipe). The feeder sends from a thread: the relay's worker takes a
batch while the feeder parses its own lines.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from itertools import compress
from multiprocessing.connection import Connection
from operator import not_

# Batches in flight to each relay's worker, besides the one in the pipe: a few, so that
# neither side waits on the other's slow moments (a batch is up to about 5 MB of lines).
_AHEAD = 3


class Channels:
    """The pipes of one run: one per relay read apart, from the rest's worker."""

    def __init__(self, relays: list[str]):
        self.pipes = {relay: multiprocessing.Pipe(duplex=False) for relay in relays}

    def keep_only(self, relay: str | None = None, feeder: bool = False) -> None:
        """In a worker's process: close every end but those its group uses (the feeder's
        sending ends, or `relay`'s receiving end)."""
        for name, (receiving, sending) in self.pipes.items():
            if not feeder:
                sending.close()
            if feeder or name != relay:
                receiving.close()

    def close(self) -> None:
        for receiving, sending in self.pipes.values():
            receiving.close()
            sending.close()

    def feeder(self) -> Feeder:
        return Feeder({relay: sending for relay, (_, sending) in self.pipes.items()})

    def fed(self, relay: str) -> Fed:
        return Fed(self.pipes[relay][0])


def take_apart(lines: list[bytes], masks: dict[str, list[bool]]) -> tuple[list[bytes], dict]:
    """The lines no mask takes, and each relay's lines (masks: relay -> a bool a line,
    each line taken by one relay at most), in order."""
    theirs = {relay: list(compress(lines, mask)) for relay, mask in masks.items()}
    return rest(lines, masks), theirs


def rest(lines: list[bytes], masks: dict[str, list[bool]]) -> list[bytes]:
    """The lines no mask takes, in order."""
    if len(masks) == 1:
        [taken] = masks.values()
    else:
        taken = map(any, zip(*masks.values(), strict=True))
    return list(compress(lines, map(not_, taken)))


class Feeder:
    """The rest's worker's side: hands out the lines of the relays read apart."""

    def __init__(self, sending: dict[str, Connection]):
        self.sending = sending
        self.relays = frozenset(sending)
        self.broken: set[str] = set()  # relays whose worker is gone
        self.queue: queue.Queue = queue.Queue(_AHEAD)
        self.thread: threading.Thread | None = None
        self.path: str | None = None  # the file being handed out, once opened

    @contextlib.contextmanager
    def file(self, path: str) -> Iterator[None]:
        """Around the reading of a central log: the relays' workers hear of it whatever
        happens (skip, unless open() was called; an end that is not whole on an error)."""
        self.path = None
        whole = False
        try:
            yield
            whole = True
        finally:
            if self.path is None:
                self._put(("skip", path))
            else:
                self._put(("end", whole))
            self.path = None

    def open(self, path: str, start: int) -> bool:
        """Hand out the file's lines from `start` (every relay's part stands there)."""
        if self.broken == self.relays:
            return False
        self._put(("open", path, start))
        self.path = path
        return True

    def hand_out(self, theirs: dict[str, list[bytes]], position: int, tail: str) -> None:
        for relay, lines in theirs.items():
            self._put(("lines", b"\n".join(lines), position, tail), relay)

    def close(self) -> None:
        """After the group's last file: the relays' workers then read on by themselves."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        for sending in self.sending.values():
            sending.close()

    def _put(self, message: tuple, relay: str | None = None) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._send, name="feeder", daemon=True)
            self.thread.start()
        self.queue.put((relay, message))

    def _send(self) -> None:
        while (item := self.queue.get()) is not None:
            relay, message = item
            for name in [relay] if relay else self.sending:
                if name in self.broken:
                    continue
                try:
                    self.sending[name].send(message)
                except OSError:  # its worker is gone: it reads nothing more from us
                    self.broken.add(name)


class Fed:
    """A relay's worker's side: its lines of a central log, as the feeder hands them out."""

    def __init__(self, receiving: Connection):
        self.receiving = receiving
        self.ended = False  # the feeder is gone, or out of step: read everything here
        self.heard: str | None = None  # the file whose header was read, till its end
        self.whole = False  # the last file asked for was handed out to its end

    @contextlib.contextmanager
    def file(self, path: str) -> Iterator[None]:
        """Around the reading of a central log: what the feeder says of it is taken, even
        when this worker reads nothing of it (nothing new, an error)."""
        self.heard = None
        try:
            yield
        finally:
            if self.heard is None:  # not asked for: take it and let it go
                for _ in self.batches(path, None):
                    pass
            self.heard = None

    def batches(self, path: str, start: int | None) -> Iterator[tuple[list[bytes], int, str]]:
        """The file's batches of this relay's lines from `start`, (lines, position after
        the batch, tail hash of the batch's last line), for as long as the feeder hands
        them out. It returns early (nothing, or a part) when the feeder does not hand out
        the file whole: the caller reads on from the last position given."""
        self.whole = False
        if self.ended or self.heard is not None:
            return
        header = self._receive()
        self.heard = path
        if header is None:
            return
        if header[:2] != ("open", path) or (start is not None and header[2] != start):
            if header != ("skip", path):
                self._out_of_step()  # (a mismatch: a bug; reading here is always right)
            return
        while (message := self._receive()) is not None and message[0] == "lines":
            _, joined, position, tail = message
            if start is not None:
                yield (joined.split(b"\n") if joined else []), position, tail
        if message is None or message[0] != "end":
            self._out_of_step()
        else:
            self.whole = message[1]

    def close(self) -> None:
        """After the group's last file (or its error): the feeder sends nothing more here."""
        self.ended = True
        self.receiving.close()

    def _receive(self) -> tuple | None:
        try:
            return self.receiving.recv()
        except (EOFError, OSError):  # the feeder is gone (ended, stopped, killed)
            self._out_of_step()
            return None

    def _out_of_step(self) -> None:
        self.ended = True
        self.receiving.close()
