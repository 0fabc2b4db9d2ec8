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

from smtplog.ingest.errors import IngestBusy

_PR_SET_PDEATHSIG = 1
_inherited: list[object] = []  # the parent's database connections, never closed here


class WorkerFailed(Exception):
    """A worker stopped on an error; what the others did is committed."""

    def __init__(self, message: str, busy: bool = False):
        super().__init__(message)
        self.busy = busy  # another ingester moved a file under us


def processes(workers: int) -> int:
    """How many processes read side by side: `workers` (the setting), no more than the
    machine's cores (a third process on two cores made a month 9 % slower, bench/ingest.py)."""
    return max(1, min(workers, os.cpu_count() or 1))


def can_fork() -> bool:
    """False inside a daemonic process (a Celery prefork child): it may not have children."""
    return not multiprocessing.current_process().daemon


def run(
    groups: list,
    workers: int,
    work: Callable,
    setup: Callable[[], None],
    progress: Callable[[int], None] | None,
) -> tuple[list, list[str]]:
    """Run `work(group, progress)` for each group in up to `workers` processes (and no
    more than the machine's cores).

    A group has a `relay` and `paths`; `work` returns (summary, whether it read the
    group's files whole). This process is
    one of the workers (one process fewer to hold in memory); the others are forked.
    Returns the summaries and the paths of the groups not read whole (a file held a line
    of another relay), which the caller reads on in one process. Raises WorkerFailed after all
    workers stopped when one of them failed; an error of this process's own group is
    raised as it is, the forked workers killed (their open transactions roll back).
    """
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            raise RuntimeError("cannot fork ingest workers inside a transaction")
    ctx = multiprocessing.get_context("fork")
    tasks, results = ctx.Queue(), ctx.Queue()
    # A group per process, the next group to the first one free (largest first).
    count = min(processes(workers), len(groups))
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
            collector.take_group(index, *work(groups[index], collector.progress_here))
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

    def take_group(self, index: int, summary, whole: bool) -> None:
        """What the work of group `index` returned."""
        self.ended.add(index)
        self.summaries.append(summary)
        if not whole:
            self.leftover.extend(self.groups[index].paths)

    def _take(self, kind: str, *data) -> None:
        if kind == "progress":
            if self.progress:
                self.progress(data[0])
        elif kind == "start":
            self.started[data[0]] = data[1]
        elif kind == "done":
            self.take_group(*data)
        elif kind == "error":
            self.ended.add(data[0])
            self.failures.append((data[1], data[2]))
        elif kind == "exit":
            self.exited += 1

    def result(self) -> tuple[list, list[str]]:
        for index, pid in self.started.items():
            if index not in self.ended:
                code = next((p.exitcode for p in self.procs if p.pid == pid), None)
                self.failures.append(
                    (
                        False,
                        f"{self.groups[index].relay}: the worker process "
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
            group = groups[index]
            results.put(("start", index, os.getpid()))
            try:
                summary, whole = work(group, lambda n: results.put(("progress", n)))
            except Exception as exc:  # reported by the parent, which raises it
                busy = isinstance(exc, IngestBusy)
                results.put(("error", index, busy, f"{group.relay}: {exc}"))
                break
            results.put(("done", index, summary, whole))
    except Exception as exc:
        results.put(("error", -1, False, f"ingest worker: {exc}"))
    finally:
        connections.close_all()  # this process's own connections
        results.put(("exit",))
        results.close()
        results.join_thread()


def _die_with(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux), and stop if it already has."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guard
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _forget_inherited_connections() -> None:
    """The forked copies of the parent's connections belong to the parent: put new,
    unopened ones in their place (each opens its own session on first use), and keep the
    copies referenced, never closed nor collected — closing one, or freeing it, would end
    the parent's session on the socket they share. The process ends with os._exit
    (multiprocessing), which runs no finaliser."""
    for conn in connections.all(initialized_only=True):
        _inherited.append(conn)
        connections[conn.alias] = connections.create_connection(conn.alias)
