"""Ingestion speed and memory, side by side with pflogsumm on the same lines, in both layouts.

    python bench/ingest.py [--layout per-relay|central|both] [--lines 1400000] [--repeat 3]
                           [--weights 55,30,15]

The month issue 10 describes, as campus clusters log it: 31 days of at least --lines lines
(smtplog.sample; 1.4-1.5M), 3 relays sharing the traffic unevenly (--weights), about 8 % of
the lines from other daemons and a third of Postfix's connection, TLS, anvil and postscreen
noise, an amavis hop, classic timestamps; written once per layout into bench/out/ and reused:
a directory per relay (``<host>/mail.log*``) or one log host's central file of all relays
(``loghost/mail.log*``, the relays' lines interleaved), the same events in both.

Each run ingests the month from scratch into a fresh PostgreSQL database (DATABASE_URL's
server, database smtplog_bench) with `manage.py ingest_maillog`, then runs pflogsumm over the
same lines right after (decompressed beforehand, untimed; for the central file one pflogsumm
reads every relay: it always reads the ``postfix`` syslog name besides --syslog-name's
``postfix-out``), and checks pflogsumm's grand totals against expected.json. Per run: wall
times, lines/s, the peak memory of all the ingester's processes (PSS and summed RSS), the
ratio of our wall time to pflogsumm's and how busy the machine was (its CPU time that was not
this run's: a run disturbed by other work shows). --repeat runs per layout (a shared 2-core
machine varies from run to run); then per layout every ratio, their median and the largest
PSS. Targets (issues 3 and 10): ratio <= 1.0 on both layouts, PSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LAYOUTS = ("per-relay", "central")
SEED = 5
TARGET_RATIO, TARGET_PSS = 1.0, 250
# pflogsumm's Grand Totals lines, and the expected.json figure each must equal
GRAND_TOTALS = {
    "received": re.compile(r"^\s*(\d+)\s+received$", re.M),
    "delivered": re.compile(r"^\s*(\d+)\s+delivered$", re.M),
    "deferrals": re.compile(r"^\s*\d+\s+deferred\s+\((\d+)\s+deferrals\)$", re.M),
    "bounced": re.compile(r"^\s*(\d+)\s+bounced$", re.M),
    "rejected": re.compile(r"^\s*(\d+)\s+rejected \(", re.M),
}


def run_measured(
    label: str, cmd: list[str], env: dict | None = None, stdin=None, stdout=subprocess.DEVNULL
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
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=stdout)
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
    """pflogsumm over each directory's files (one per relay, or the log host's): wall seconds.

    Its grand totals must equal what expected.json says the directory's relays log.
    """
    from smtplog.ingest.files import expand

    expected = json.loads((out / "expected.json").read_text())
    relays: dict[str, list[dict]] = {}
    for relay in expected["relays"]:
        relays.setdefault(relay["directory"], []).append(relay)
    total = 0.0
    for directory, members in sorted(relays.items()):
        # pflogsumm reads "postfix" always, and one other syslog name if asked
        others = {r["syslog_name"] for r in members} - {"postfix"}
        if len(others) > 1:
            raise SystemExit(f"pflogsumm cannot read {sorted(others)} in one run")
        paths = expand([str(out / directory / "mail.log*")])
        with tempfile.TemporaryFile() as joined, tempfile.TemporaryFile() as report:
            for path in paths:  # pflogsumm reads plain text: decompress beforehand, untimed
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    shutil.copyfileobj(f, joined)
            joined.seek(0)
            seconds, *_ = run_measured(
                f"pflogsumm {directory}",
                ["pflogsumm", f"--syslog-name={others.pop() if others else 'postfix'}"],
                stdin=joined,
                stdout=report,
            )
            report.seek(0)
            check_totals(report.read().decode(), members, expected["pflogsumm"])
        total += seconds
    return total


def check_totals(report: str, relays: list[dict], expected: dict) -> None:
    """pflogsumm's grand totals against the sum of expected.json's days of these relays."""
    want: Counter[str] = Counter()
    for relay in relays:
        for row in expected[relay["host"]].values():
            want.update(row)
    got = {}
    for name, pattern in GRAND_TOTALS.items():
        m = pattern.search(report)
        got[name] = int(m[1]) if m else None
    wrong = {k: (got[k], want[k]) for k in GRAND_TOTALS if got[k] != want[k]}
    hosts = ", ".join(r["host"] for r in relays)
    if wrong:
        print(f"  pflogsumm totals DIFFER from expected.json ({hosts}), (got, want): {wrong}")
    else:
        print(f"  pflogsumm totals = expected.json ({hosts}): {got}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=(*LAYOUTS, "both"), default="both")
    parser.add_argument("--lines", type=int, default=1_400_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per layout, each ingestion then pflogsumm (each ratio and their median)",
    )
    parser.add_argument(
        "--weights",
        default="55,30,15",
        help="the relays' shares of the traffic (default 55,30,15; 1,1,1 for even relays)",
    )
    parser.add_argument("--dir", default=str(REPO / "bench" / "out" / "ingest-months"))
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench"
        ),
    )
    args = parser.parse_args()
    weights = tuple(float(w) for w in args.weights.split(","))
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)

    months = {
        layout: prepare_month(
            Path(args.dir) / f"{layout}-{args.weights.replace(',', '-')}",
            args.lines,
            layout=layout,
            weights=weights,
        )
        for layout in layouts
    }
    summary = {}
    for layout, out in months.items():
        lines = json.loads((out / "expected.json").read_text())["lines"]
        files = len(json.loads((out / "expected.json").read_text())["files"])
        print(f"== {layout}: {lines:,} lines in {files} files ({out})")
        ratios, peaks = [], []
        for run in range(1, args.repeat + 1):
            print(f"{layout} run {run} of {args.repeat}; {load_average()}")
            busy, started = machine_busy(), time.perf_counter()
            ours, rss, pss = ingest_from_scratch(args.database_url, out)
            theirs = pflogsumm_seconds(out)
            cores = (machine_busy() - busy) / (time.perf_counter() - started)
            ratios.append(ours / theirs)
            peaks.append(pss)
            print(f"  ingest wall           {ours:.1f} s  ({lines / ours:,.0f} lines/s)")
            print(
                f"  ingest peak memory    PSS {pss:.0f} MB, RSS {rss:.0f} MB: all its "
                f"processes summed  (target PSS <= {TARGET_PSS})"
            )
            print(f"  pflogsumm wall        {theirs:.1f} s  ({lines / theirs:,.0f} lines/s)")
            print(f"  ratio ours/pflogsumm  {ours / theirs:.2f}  (target <= {TARGET_RATIO})")
            print(
                f"  machine               {cores:.2f} of {os.cpu_count()} cores busy on "
                f"average over the run (ours included); {load_average()}"
            )
        summary[layout] = ratios, peaks
    print(f"== summary ({args.repeat} runs per layout, weights {args.weights}; {load_average()})")
    for layout, (ratios, peaks) in summary.items():
        median = statistics.median(ratios)
        print(
            f"{layout:<10} ratios {' '.join(f'{r:.2f}' for r in ratios)}; median {median:.2f} "
            f"({'met' if median <= TARGET_RATIO else 'MISSED'}: <= {TARGET_RATIO}); "
            f"peak PSS {max(peaks):.0f} MB "
            f"({'met' if max(peaks) <= TARGET_PSS else 'MISSED'}: <= {TARGET_PSS})"
        )


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_busy() -> float:
    from bench.report import machine_busy_seconds

    return machine_busy_seconds()


def prepare_month(
    out: Path, lines: int, layout: str = "per-relay", weights: tuple[float, ...] | None = None
) -> Path:
    """The sample month of at least `lines` lines in `out` (generated once, then reused).

    It ends yesterday (whole days: a month ending at the present would differ from one
    layout to the other by the minutes between them). Sized once per weights: another
    layout's month of the same weights beside `out` gives its messages per day and last
    day, so both layouts hold the same events.
    """
    from smtplog.sample import generate

    expected = out / "expected.json"
    wanted = {"layout": layout, "weights": list(weights) if weights else None, "seed": SEED}
    if reusable(out, wanted, lines):
        return out
    shutil.rmtree(out, ignore_errors=True)
    twin = sized_elsewhere(out.parent, wanted, lines)
    per_day = twin["messages_per_day"] if twin else 300
    yesterday = dt.datetime.now(ZoneInfo("Asia/Taipei")).date() - dt.timedelta(days=1)
    end = dt.date.fromisoformat(twin["end"]) if twin else yesterday
    while True:  # size the month to the line target
        started = time.perf_counter()
        generate(
            out,
            days=31,
            end=end,
            relays=3,
            messages_per_day=per_day,
            seed=SEED,
            layout=layout,
            relay_weights=weights,
        )
        written = json.loads(expected.read_text())["lines"]
        print(f"generated {written:,} lines ({layout}) in {time.perf_counter() - started:.1f} s")
        if written >= lines:
            break
        per_day = int(per_day * lines / written * 1.05) + 1
        shutil.rmtree(out)
    shape = {**wanted, "messages_per_day": per_day, "end": end.isoformat(), "lines": written}
    (out / "bench.json").write_text(json.dumps(shape))
    return out


def reusable(out: Path, wanted: dict, lines: int) -> bool:
    """Whether `out` holds a month of this shape (one written before bench.json: per relay)."""
    expected, shape = out / "expected.json", out / "bench.json"
    if not expected.exists() or json.loads(expected.read_text())["lines"] < lines:
        return False
    made = json.loads(shape.read_text()) if shape.exists() else {}
    return not made or ("end" in made and all(made.get(k) == v for k, v in wanted.items()))


def sized_elsewhere(parent: Path, wanted: dict, lines: int) -> dict | None:
    """The shape of a month of the same weights and seed in another layout."""
    for shape in parent.glob("*/bench.json") if parent.is_dir() else ():
        other = json.loads(shape.read_text())
        if (
            other.get("end")
            and other["weights"] == wanted["weights"]
            and other["seed"] == wanted["seed"]
            and other["lines"] >= lines
        ):
            return other
    return None


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
