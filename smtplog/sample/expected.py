"""What the generated logs must produce: the report's columns per sender and local day, and
pflogsumm's per relay and day (``expected.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

COLUMNS = ("auth_blk", "auth_rcv", "bounced", "deferred", "expired", "sent")

AUTH_BLK, AUTH_RCV, BOUNCED, DEFERRED, EXPIRED, SENT = range(6)

PFLOGSUMM = ("received", "delivered", "deferrals", "bounced", "rejected")

RECEIVED, DELIVERED, DEFERRALS, PF_BOUNCED, REJECTED = range(5)


@dataclass
class Expected:
    """What the generated logs must produce: per sender and day, per relay and day (pflogsumm)."""

    timezone: str
    first_day: date
    last_day: date
    counts: dict[str, dict[str, dict[str, int]]]
    lines: int
    relays: list[dict[str, str]]
    pflogsumm: dict[str, dict[str, dict[str, int]]]
    files: list[str] = field(default_factory=list)
    seed: int = 1
    timestamp_format: str = "classic"

    def to_json(self) -> dict:
        return {
            "timezone": self.timezone,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "timestamp_format": self.timestamp_format,
            "seed": self.seed,
            "lines": self.lines,
            "relays": self.relays,
            "files": self.files,
            "counts": self.counts,
            "pflogsumm": self.pflogsumm,
        }

    @classmethod
    def load(cls, path: Path) -> Expected:
        """Read an ``expected.json`` (or the directory holding it)."""
        path = Path(path)
        data = json.loads((path / "expected.json" if path.is_dir() else path).read_text())
        return cls(
            timezone=data["timezone"],
            first_day=date.fromisoformat(data["first_day"]),
            last_day=date.fromisoformat(data["last_day"]),
            counts=data["counts"],
            lines=data["lines"],
            relays=data["relays"],
            pflogsumm=data["pflogsumm"],
            files=data.get("files", []),
            seed=data.get("seed", 1),
            timestamp_format=data.get("timestamp_format", "classic"),
        )

    def day(self, sender: str, day: date | str) -> dict[str, int]:
        """All six columns and their sum for one sender and day (zeros included)."""
        key = day.isoformat() if isinstance(day, date) else day
        row = {c: self.counts.get(sender.lower(), {}).get(key, {}).get(c, 0) for c in COLUMNS}
        row["sum"] = sum(row.values())
        return row

    def totals(self) -> dict[str, int]:
        """Each column summed over all senders and days."""
        out = dict.fromkeys(COLUMNS, 0)
        for days in self.counts.values():
            for row in days.values():
                for column, n in row.items():
                    out[column] += n
        return out
