"""Ingestion speed and memory, side by side with pflogsumm on the same files.

    python bench/ingest.py [--lines 1400000] [--repeat 3]

Generates a month of at least --lines lines (smtplog.sample), ingests it from scratch
into a fresh PostgreSQL database (DATABASE_URL's server, database smtplog_bench) with
`manage.py ingest_maillog`, runs pflogsumm over the same files, and prints lines/s,
the peak memory of the ingester (all its processes) and the ratio of our wall time to
pflogsumm's; --repeat times over (a shared 2-core machine varies from run to run), then
every ratio and their median. Each run also prints its own CPU time and the rest of the
machine's, so that a run disturbed by other work shows.
Targets (issue 3): ratio <= 1.0, peak RSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_measured(
    label: str, cmd: list[str], env: dict | None = None, stdin=None
) -> tuple[float, float, float]:
    """Wall seconds, and the peaks of the memory of the process and its children (MB).

    The ingester forks a worker per relay. Sampled every 250 ms from /proc: the summed
    RSS (which counts pages they share, such as the libpq and Django mapped before the
    fork, once per process: an overestimate) and the summed PSS (each shared page split
    between the processes sharing it: the memory they take together).
    """
    from bench.report import machine_busy_seconds

    busy = machine_busy_seconds()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.DEVNULL)
    rss = pss = 0
    while proc.poll() is None:
        tree_rss, tree_pss = tree_memory(proc.pid)
        rss, pss = max(rss, tree_rss), max(pss, tree_pss)
        time.sleep(0.25)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed")
    busy = machine_busy_seconds() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    print(
        f"  {label}: {wall:.1f} s; "
        f"CPU {cpu:.1f} s its own, {busy - cpu:.1f} s by other processes (the database "
        "server's work for us, and whatever else runs: noise)"
    )
    return wall, rss / 2**10, pss / 2**10


def tree_memory(pid: int) -> tuple[int, int]:
    """RSS and PSS in kB of `pid` and its descendants (Linux /proc)."""
    rss = pss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{current}/task/{current}/children") as f:
                todo.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return rss, pss


def pflogsumm_seconds(out: Path) -> float:
    from smtplog.ingest.files import expand

    total = 0.0
    for relay in sorted(p for p in out.iterdir() if p.is_dir()):
        paths = expand([str(relay / "mail.log*")])
        name = (
            "postfix-out"
            if "postfix-out/" in (relay / "mail.log").read_text()[:20000]
            else "postfix"
        )
        with tempfile.TemporaryFile() as joined:
            for path in paths:  # pflogsumm reads plain text: decompress beforehand, untimed
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    shutil.copyfileobj(f, joined)
            joined.seek(0)
            seconds, *_ = run_measured(
                f"pflogsumm {relay.name}", ["pflogsumm", f"--syslog-name={name}"], stdin=joined
            )
            total += seconds
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_400_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of both, side by side (each ratio and their median)",
    )
    parser.add_argument("--dir", default=str(REPO / "bench" / "out" / "ingest"))
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench"
        ),
    )
    args = parser.parse_args()

    out = prepare_month(Path(args.dir), args.lines)
    lines = json.loads((out / "expected.json").read_text())["lines"]

    ratios = []
    for run in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"run {run} of {args.repeat}")
        ours, rss, pss = ingest_from_scratch(args.database_url, out)
        theirs = pflogsumm_seconds(out)
        ratios.append(ours / theirs)
        print(f"lines                 {lines:,}")
        print(f"ingest wall           {ours:.1f} s  ({lines / ours:,.0f} lines/s)")
        print(
            f"ingest peak memory    PSS {pss:.0f} MB, RSS {rss:.0f} MB: all its "
            "processes summed  (target <= 250)"
        )
        print(f"pflogsumm wall        {theirs:.1f} s  ({lines / theirs:,.0f} lines/s)")
        print(f"ratio ours/pflogsumm  {ours / theirs:.2f}  (target <= 1.0)")
    if len(ratios) > 1:
        print(
            f"ratios {' '.join(f'{r:.2f}' for r in ratios)}; median "
            f"{statistics.median(ratios):.2f}; at most 1.0 in "
            f"{sum(r <= 1.0 for r in ratios)} of {len(ratios)}"
        )


def prepare_month(out: Path, lines: int) -> Path:
    """The sample month of at least `lines` lines in `out` (generated once, then reused)."""
    from smtplog.sample import generate

    expected = out / "expected.json"
    if not expected.exists() or json.loads(expected.read_text())["lines"] < lines:
        shutil.rmtree(out, ignore_errors=True)
        per_day = 300
        while True:  # size the month to the line target
            started = time.perf_counter()
            data = generate(out, days=31, relays=3, messages_per_day=per_day, seed=5)
            written = json.loads(expected.read_text())["lines"]
            print(f"generated {written:,} lines in {time.perf_counter() - started:.1f} s")
            if written >= lines:
                break
            per_day = int(per_day * lines / written * 1.05) + 1
            shutil.rmtree(out)
        del data
    return out


def ingest_from_scratch(
    database_url: str,
    out: Path,
    prepare: Callable[[str], None] | None = None,
    watch: contextlib.AbstractContextManager | None = None,
) -> tuple[float, float, float]:
    """A new database, migrated, then `ingest_maillog` over the month: wall s, RSS, PSS.

    prepare(database_url): called once migrated, to change the schema; watch: entered
    around the ingestion alone (bench/trace.py measures what indexes cost this way).
    """
    base, name = database_url.rsplit("/", 1)
    import psycopg

    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "smtplog.settings",
        "SMTPLOG_VAR_DIR": str(out / "var"),
    }
    subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True)
    if prepare is not None:
        prepare(database_url)
    with watch or contextlib.nullcontext():
        return run_measured(
            "ingest_maillog",
            [
                sys.executable,
                str(REPO / "manage.py"),
                "ingest_maillog",
                "--no-progress",
                str(out / "*" / "mail.log*"),
            ],
            env=env,
        )


if __name__ == "__main__":
    main()
