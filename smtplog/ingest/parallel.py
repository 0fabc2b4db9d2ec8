"""Ingesting several relays side by side: one worker process per relay (PostgreSQL).

The correlation state is per relay (messages are keyed by relay and queue ID), so the
files of different relays can be read by different processes; the files of one relay
stay in one process, in rotation order. What relays share — the login aliases and the
daily counters — is serialised in the database (smtplog.ingest.persist.write_batch).

Workers are forked from the ingesting process (Django is set up already) and die with
it: a killed ingester leaves no orphan writing behind the next run's back, and the next
run waits until the database sessions of the old workers are gone (WRITERS_LOCK).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable

from django.db import connections

_PR_SET_PDEATHSIG = 1
_inherited: list[object] = []  # the parent's database connections, never closed here


class WorkerFailed(Exception):
    """A worker stopped on an error; what the others did is committed."""

    def __init__(self, message: str, busy: bool = False):
        super().__init__(message)
        self.busy = busy  # another ingester moved a file under us


def can_fork() -> bool:
    """False inside a daemonic process (a Celery prefork child): it may not have children."""
    return not multiprocessing.current_process().daemon


def run(
    groups: list[tuple[str, list[str]]],
    workers: int,
    work: Callable,
    setup: Callable[[], None],
    progress: Callable[[int], None] | None,
) -> tuple[list, list[str]]:
    """Run `work(relay, paths, progress)` for each group in up to `workers` processes.

    This process is one of them (one process fewer to hold in memory); the others are
    forked. Returns the summaries the groups returned (or, for a group that met a line
    of another relay, what it committed before) and the paths of those interrupted
    groups, which the caller reads on in one process. Raises WorkerFailed after all
    workers stopped when one of them failed; an error of this process's own group is
    raised as it is, the forked workers killed (their open transactions roll back).
    """
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            raise RuntimeError("cannot fork ingest workers inside a transaction")
    ctx = multiprocessing.get_context("fork")
    tasks, results = ctx.Queue(), ctx.Queue()
    count = min(workers, len(groups))
    for index in range(len(groups)):
        tasks.put(index)
    for _ in range(count):
        tasks.put(None)
    procs = [
        ctx.Process(
            target=_worker,
            args=(groups, tasks, results, os.getpid(), work, setup),
            name=f"ingest-worker-{n}",
        )
        for n in range(count - 1)
    ]
    for proc in procs:
        proc.start()
    collector = _Collector(groups, procs, results, progress)
    try:
        while (index := tasks.get()) is not None:
            relay, paths = groups[index]
            try:
                collector.summaries.append(work(relay, paths, collector.progress_here))
            except ForeignRelay as exc:
                collector.summaries.append(exc.summary)
                collector.leftover.extend(paths)
        collector.wait()
    finally:
        for proc in procs:  # after an exception here (Ctrl-C, a time limit) too
            if proc.is_alive():
                proc.kill()
            proc.join()
    return collector.result()


class _Collector:
    """What the forked workers report, read between this process's own batches."""

    def __init__(self, groups, procs, results, progress):
        self.groups, self.procs, self.results, self.progress = groups, procs, results, progress
        self.summaries: list = []
        self.leftover: list[str] = []
        self.failures: list[tuple[bool, str]] = []
        self.started: dict[int, int] = {}  # group index -> worker pid
        self.ended: set[int] = set()
        self.exited = 0

    def progress_here(self, lines: int) -> None:
        if self.progress:
            self.progress(lines)
        while True:
            try:
                self._take(*self.results.get_nowait())
            except queue.Empty:
                return

    def wait(self) -> None:
        """Until every forked worker has exited (or died)."""
        while self.exited < len(self.procs):
            try:
                message = self.results.get(timeout=0.5)
            except queue.Empty:
                if any(proc.is_alive() for proc in self.procs):
                    continue
                try:  # all gone: take what they said last, then stop waiting
                    message = self.results.get(timeout=0.5)
                except queue.Empty:
                    break
            self._take(*message)
        for proc in self.procs:
            proc.join(timeout=10)

    def _take(self, kind: str, *data) -> None:
        if kind == "progress":
            if self.progress:
                self.progress(data[0])
        elif kind == "start":
            self.started[data[0]] = data[1]
        elif kind == "done":
            self.ended.add(data[0])
            self.summaries.append(data[1])
        elif kind == "foreign":
            self.ended.add(data[0])
            self.summaries.append(data[1])
            self.leftover.extend(self.groups[data[0]][1])
        elif kind == "error":
            self.ended.add(data[0])
            self.summaries.append(data[1])
            self.failures.append((data[2], data[3]))
        elif kind == "exit":
            self.exited += 1

    def result(self) -> tuple[list, list[str]]:
        for index, pid in self.started.items():
            if index not in self.ended:
                code = next((p.exitcode for p in self.procs if p.pid == pid), None)
                self.failures.append(
                    (
                        False,
                        f"{self.groups[index][0]}: the worker process "
                        f"ended before finishing (exit code {code}); "
                        "run again to go on",
                    )
                )
        if self.failures:
            raise WorkerFailed(
                "; ".join(message for _, message in self.failures),
                busy=all(busy for busy, _ in self.failures),
            )
        return self.summaries, self.leftover


def _worker(groups, tasks, results, parent: int, work: Callable, setup: Callable) -> None:
    _die_with(parent)
    _forget_inherited_connections()
    try:
        setup()
        while (index := tasks.get()) is not None:
            relay, paths = groups[index]
            results.put(("start", index, os.getpid()))
            try:
                summary = work(relay, paths, lambda n: results.put(("progress", n)))
            except ForeignRelay as exc:
                results.put(("foreign", index, exc.summary))
            except Exception as exc:  # reported by the parent, which raises it
                from smtplog.ingest.run import IngestBusy  # (run imports this module)

                results.put(
                    (
                        "error",
                        index,
                        getattr(exc, "summary", None),
                        isinstance(exc, IngestBusy),
                        f"{relay}: {exc}",
                    )
                )
                break
            else:
                results.put(("done", index, summary))
    except Exception as exc:
        results.put(("error", -1, None, False, f"ingest worker: {exc}"))
    finally:
        connections.close_all()  # this process's own connections
        results.put(("exit",))
        results.close()
        results.join_thread()


class ForeignRelay(Exception):
    """A file of one relay holds lines of another: that group is read on in one process.

    `summary` (what the group committed before) is set by the work function on its way out.
    """

    summary = None


def _die_with(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux), and stop if it already has."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _forget_inherited_connections() -> None:
    """The forked copies of the parent's connections belong to the parent: set them aside
    unclosed (closing would end the parent's session) and open our own on first use."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
