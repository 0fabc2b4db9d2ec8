"""Planning a run: which files are worth opening, how much is left to read, and which
files go to which worker process (one relay's files to one worker)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection, transaction

from smtplog.ingest import feed, files, parallel
from smtplog.ingest.reading import Share, file_size
from smtplog.ingest.summary import Summary
from smtplog.models import LogFile, RelayPart
from smtplog.postfix.parser import LineParser

# Read from the start of each file, before the workers start, to find which relays log in
# it and their shares (a few hundred lines: the plan reads every file's start in one
# process, so 1 MiB of each of a month's 96 files delayed the workers by seconds).
_PROBE_BYTES = 64 << 10
_ONE_RELAY = 100


def survey(paths: list[str], summary: Summary) -> tuple[dict, dict[str, int]]:
    """The paths worth opening, by path (their LogSource, or None when they are read as
    they come: standard input, a file with no first line yet or that cannot be opened),
    and the bytes each has left to read. Files that are not logs are refused here."""
    sources: dict[str, files.LogSource | None] = {}
    for path in paths:
        try:
            sources[path] = None if path == "-" else files.identify(path)
        except files.NotALog as exc:
            summary.notes.append(f"{path}: not read: {exc}")
        except OSError:
            sources[path] = None  # reported when it is read
    known = [source for source in sources.values() if source is not None]
    positions = dict(
        LogFile.objects.filter(
            fingerprint__in=[source.fingerprint for source in known]
        ).values_list("fingerprint", "position")
    )
    unread = {
        source.path: unread_bytes(source, positions.get(source.fingerprint, 0)) for source in known
    }
    return sources, unread


@dataclass
class Group:
    """What one worker process reads: `relay`'s files, and its lines of central logs.

    The rest's group of central logs (`rest`: the relays read apart) reads the lines of
    every relay but those, and keeps the file's own position.
    """

    relay: str
    reads: list[tuple[str, Share]] = field(default_factory=list)  # in rotation order
    size: int = 0  # bytes to read, about (the share of a central log by its first lines)
    rest: frozenset[str] = frozenset()
    channels: feed.Channels | None = None  # the rest's worker hands out the central logs

    def keep_channels(self) -> None:
        """In the process that reads this group: close the pipes' ends it does not use."""
        if self.channels is not None:
            self.channels.keep_only(self.relay, feeder=bool(self.rest))

    def close_channels(self) -> None:
        """After its last file: the other workers hear that this one is done."""
        feeder = next((share.feeder for _, share in self.reads if share.feeder), None)
        if feeder is not None:
            feeder.close()  # (what it queued is sent first)
        if self.channels is not None:
            self.channels.close()

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.reads]


def relay_groups(paths: list[str], sources: dict, unread: dict[str, int], tz) -> list[Group] | None:
    """The files by relay, largest first, when they are worth reading side by side.

    A file of one relay goes to that relay's worker. A central log (the lines of several
    relays in one file) is read by a worker for each of its largest relays (_apart),
    keeping that relay's lines and read position (RelayPart), and one for the rest,
    which reads the lines of every other relay (relays the file's start did not show
    too) and keeps the file's own position.

    None (read them in this process) on SQLite, inside a transaction (tests), with one
    relay or little to read, or when a file's relays cannot be told from its start.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or settings.SMTPLOG_INGEST_WORKERS < 2
        or any(sources[path] is None for path in paths)
        or sum(unread.values()) < settings.SMTPLOG_INGEST_PARALLEL_BYTES
        or not parallel.can_fork()
    ):
        return None
    whole: dict[str, list[str]] = {}
    central: dict[str, Counter] = {}
    sizes: Counter = Counter()
    for path in paths:
        try:
            relays = _relays(sources[path], tz)
        except (OSError, EOFError):
            return None
        if not relays:
            return None
        if len(relays) == 1:
            relay = next(iter(relays))
            whole.setdefault(relay, []).append(path)
            sizes[relay] += unread[path]
        else:
            central[path] = relays
            lines = sum(relays.values())
            for relay, n in relays.items():
                sizes[relay] += unread[path] * n // lines
    if len(sizes) < 2:
        return None
    groups: dict[str, Group] = {}
    rest: set[str] = set()  # the relays of central logs read by the rest's worker
    apart: frozenset[str] = frozenset()  # and those read by a worker of their own
    if central:
        apart, rest = _apart(central, sources, sizes)
        if not rest:
            return None  # every relay has its part: read on in one process
        head = Group(max(rest, key=sizes.get), rest=apart)  # named by its largest relay
        groups[head.relay] = head
        for path in central:
            head.reads.append((path, Share(exclude=apart)))
            for relay in apart:
                groups.setdefault(relay, Group(relay)).reads.append(
                    (path, Share(relay=relay, part=True))
                )
    for relay, relay_paths in whole.items():
        # (one process correlates a relay: the rest's worker reads its files too)
        group = groups.setdefault(head.relay if relay in rest else relay, Group(relay))
        group.reads += [(path, Share(relay=relay)) for path in relay_paths]
    for group in groups.values():
        group.reads.sort(key=lambda read: files.rotation_key(read[0]))
        group.size = sum(sizes[r] for r in rest) if group.rest else sizes[group.relay]
    if len(groups) < 2:
        return None
    _open_parts([sources[path] for path in central], apart)
    if central and len(groups) <= parallel.processes(settings.SMTPLOG_INGEST_WORKERS):
        _hand_out(groups.values(), apart)
    return sorted(groups.values(), key=lambda group: -group.size)


def _hand_out(groups, apart: frozenset[str]) -> None:
    """The central logs read once, by the rest's worker, which hands each relay read
    apart its lines (smtplog.ingest.feed). Only when every group has a process of its
    own: a relay's worker waits for the rest's."""
    channels = feed.Channels(sorted(apart))
    feeder = channels.feeder()
    fed = {relay: channels.fed(relay) for relay in apart}
    for group in groups:
        group.channels = channels
        for n, (path, share) in enumerate(group.reads):
            if share.exclude:
                group.reads[n] = path, replace(share, feeder=feeder)
            elif share.part:
                group.reads[n] = path, replace(share, fed=fed[share.relay])


def _apart(central: dict[str, Counter], sources: dict, sizes: Counter) -> tuple[frozenset, set]:
    """The relays of central logs read apart (each by a worker of its own), and the rest.

    As many workers as the machine has cores, at most: one more than the cores would
    parse nothing sooner, and a worker whose group waits for a process cannot be handed
    its lines (_hand_out): each worker would read the whole file. The largest relays go
    apart. A relay with a part left by a stopped run is read apart
    again (it reads on from its part's position; the rest from the file's).
    """
    parted = set(
        RelayPart.objects.filter(
            logfile__fingerprint__in=[sources[path].fingerprint for path in central]
        ).values_list("relay", flat=True)
    )
    seen = {relay for relays in central.values() for relay in relays}
    slots = parallel.processes(settings.SMTPLOG_INGEST_WORKERS) - 1
    others = sorted(seen - parted, key=sizes.get, reverse=True)
    apart = set(parted)
    while len(apart) < slots and len(others) > 1:
        apart.add(others.pop(0))
    return frozenset(apart), set(others)


def _open_parts(central: list[files.LogSource], relays: frozenset[str]) -> None:
    """The RelayPart rows of the central logs' relays read apart, each from where that
    relay's lines are read up to (its part's position, or the file's).

    Rows that exist stay as they are. In one transaction, a few statements for all the
    files (a get_or_create per file and relay cost 0.1 s of a month's one-process start).
    """
    paths = {source.fingerprint: source.path for source in central}
    with transaction.atomic():
        LogFile.objects.bulk_create(
            [LogFile(fingerprint=fingerprint, path=path) for fingerprint, path in paths.items()],
            ignore_conflicts=True,
        )
        RelayPart.objects.bulk_create(
            [
                RelayPart(
                    logfile=logfile,
                    relay=relay,
                    position=logfile.position,
                    year_anchor=logfile.year_anchor,
                    last_month=logfile.last_month,
                    last_line_time=logfile.last_line_time,
                )
                for logfile in LogFile.objects.filter(fingerprint__in=paths)
                for relay in sorted(relays)
            ],
            ignore_conflicts=True,
        )


def _relays(source: files.LogSource, tz) -> Counter:
    """The relay hosts of the Postfix lines at the file's start, and how many.

    A file whose first _ONE_RELAY records are all of one relay is that relay's: the
    lines of a central log's relays alternate within far fewer (a relay with a tenth of
    the traffic is missing from 100 lines once in 37,000 files).
    """
    parser = LineParser(tz)
    read = 0
    relays: Counter = Counter()
    with files.open_stream(source.path, source.compressed) as stream:
        for line in stream:
            read += len(line)
            if read > _PROBE_BYTES or not line.endswith(b"\n"):
                break
            rec = parser.parse(line)
            if rec is not None:
                relays[rec.host] += 1
                if len(relays) == 1 and relays[rec.host] >= _ONE_RELAY:
                    break
    return relays


def unread_bytes(source: files.LogSource, stored: int) -> int:
    size = file_size(source) or 0
    return max(size - stored % 2**32 if source.compressed else size - stored, 0)
