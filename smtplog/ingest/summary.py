"""What an ingestion run tells: its summary, and the progress it reports as it goes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


class Progress(Protocol):
    """What ingest() tells as it goes: how many bytes it is going to read, then each part."""

    def start(self, total: int | None) -> None: ...  # None: not known (standard input)

    def advance(self, done: int) -> None: ...


@dataclass
class Summary:
    files: int = 0
    lines: int = 0
    bytes: int = 0
    parsed: int = 0
    events: int = 0
    messages: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # files that could not be read
    notes: list[str] = field(default_factory=list)  # files refused, repositioned, cut short
    seconds: float = 0.0

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    def add(self, other: Summary) -> None:
        for name in ("files", "lines", "bytes", "parsed", "events", "messages", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)
        self.notes.extend(other.notes)
