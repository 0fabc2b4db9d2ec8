"""What ingestion costs per line, by line kind and stage, in machine instructions.

    flock /work/bench.lock .venv/bin/python bench/profile_ingest.py [--month DIR] [--relay HOST]
        [--days N] [--write]

Wall time on a shared 2-core machine is noise; instruction counts under valgrind's
callgrind are not. The script runs the single-process ingestion path in one process:
read (files.read_batches) -> LineParser.parse -> Correlator.feed_all (record by record)
-> persist.take_batch -> persist.write_batch (--write: into DATABASE_URL's database,
which must be migrated and hold no messages: FakeIds counts them from 1), and calls
each stage's work on each line through a C function of its own (a tiny extension built
here, one function per stage and line kind), so that callgrind's inclusive cost of that
function is exactly the cost of that work. It re-runs itself under callgrind and prints
a table: share of lines, and instructions per line of each stage for each line kind.

Line kinds are told here by simple rules of their own (the daemon, the start of the
message, the record class), not by the parser's code paths.

The month is smtplog.sample's (generated once into --month, 3 relays, seed 5, the shape
of issue 10 at a smaller size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import re
import subprocess
import sys
import sysconfig
import tempfile
import zoneinfo
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
SLOTS = 96
BATCH_LINES = 20_000

# -- the C functions the work is called through -----------------------------------------
C_SOURCE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define SLOT(n) __attribute__((noinline)) PyObject *cgslot_##n(PyObject *self, \
    PyObject *const *args, Py_ssize_t nargs) { \
    volatile int tag = n; (void)tag; \
    return PyObject_Vectorcall(args[0], args + 1, nargs - 1, NULL); }
#define M(n) {"s" #n, (PyCFunction)(void (*)(void))cgslot_##n, METH_FASTCALL, NULL},
%(slots)s
static PyMethodDef methods[] = { %(methods)s {NULL, NULL, 0, NULL} };
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cgslots", NULL, -1, methods};
PyMODINIT_FUNC PyInit__cgslots(void) { return PyModule_Create(&module); }
"""


def build_slots(directory: Path):
    """The extension module: s0..s{SLOTS-1}(func, *args) == func(*args), each its own symbol."""
    so = directory / ("_cgslots" + sysconfig.get_config_var("EXT_SUFFIX"))
    if not so.exists():
        source = directory / "_cgslots.c"
        source.write_text(
            C_SOURCE
            % {
                "slots": "\n".join(f"SLOT({n})" for n in range(SLOTS)),
                "methods": " ".join(f"M({n})" for n in range(SLOTS)),
            }
        )
        include = sysconfig.get_paths()["include"]
        subprocess.run(
            ["cc", "-O1", "-fno-ipa-icf", "-fno-inline", "-fPIC", "-shared", "-g"]
            + [f"-I{include}", str(source), "-o", str(so)],
            check=True,
        )
    sys.path.insert(0, str(directory))
    import _cgslots

    return _cgslots


# -- line kinds ---------------------------------------------------------------------------
_HEAD = re.compile(
    rb"^(?:[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+|\d{4} [A-Z][a-z]{2} \S+ \S+)"
    rb" (\S+) ([^\s\[:]+)(?:\[\d+\])?: (.*)$"
)
NOISE_RULES = [  # (daemon, message start or substring, kind)
    ("smtpd", re.compile(rb"connect from "), "noise: smtpd connect"),
    ("smtpd", re.compile(rb"disconnect from "), "noise: smtpd disconnect"),
    ("smtpd", re.compile(rb".*TLS connection established"), "noise: smtpd TLS"),
    ("smtpd", re.compile(rb"lost connection"), "noise: smtpd lost connection"),
    ("smtpd", re.compile(rb""), "noise: smtpd other"),
    ("smtp", re.compile(rb""), "noise: smtp (connect to, TLS, warning)"),
    ("anvil", re.compile(rb""), "noise: anvil"),
    ("postscreen", re.compile(rb""), "noise: postscreen"),
    ("dnsblog", re.compile(rb""), "noise: dnsblog"),
    ("", re.compile(rb""), "noise: other postfix"),
]


def kind_of(line: bytes, rec) -> str:
    if rec is not None:
        name = type(rec).__name__
        if name == "Delivery":
            hop = rec.relay_ip in ("127.0.0.1", "::1") and rec.queued_as
            return "rec: delivery to the filter" if hop else f"rec: delivery {rec.status}"
        return {
            "ClientLine": "rec: smtpd client=",
            "MessageIdLine": "rec: cleanup message-id",
            "QmgrFrom": "rec: qmgr from=",
            "QmgrRemoved": "rec: qmgr removed",
        }.get(name, f"rec: {name}")
    m = _HEAD.match(line)
    if m is None:
        return "not syslog"
    program, message = m[2], m[3]
    if not program.startswith(b"postfix"):
        return "other daemons"
    daemon = program.rsplit(b"/", 1)[-1].decode()
    for rule_daemon, pattern, kind in NOISE_RULES:
        if rule_daemon in ("", daemon) and pattern.match(message):
            return kind
    return "noise: other postfix"


# -- the month ----------------------------------------------------------------------------
def month_files(month: Path, relay: str | None, days: int | None) -> list[str]:
    from smtplog.ingest import files

    if not (month / "expected.json").exists():
        from smtplog.sample import generate

        generate(month, days=31, relays=3, messages_per_day=450, seed=5)
    paths = []
    for relay_dir in sorted(p for p in month.iterdir() if p.is_dir()):
        if relay is None or relay_dir.name == relay:
            found = files.expand([str(relay_dir / "mail.log*")])
            paths += found[-days:] if days else found
    return paths


def read_file(path: str) -> list[bytes]:
    from smtplog.ingest import files

    lines: list[bytes] = []
    with files.open_stream(path, path.endswith(".gz")) as stream:
        for batch, _ in files.read_batches(stream, 0, BATCH_LINES):
            lines += batch
    return lines


def classify(paths: list[str], cache: Path) -> list[list[str]]:
    """The kind of every line of every file (natively, once; cached)."""
    from smtplog.postfix.parser import LineParser

    if cache.exists():
        stored = pickle.loads(cache.read_bytes())
        if stored["paths"] == paths:
            return stored["kinds"]
    kinds = []
    for path in paths:
        parser = LineParser(TZ, reference=reference(path))
        kinds.append([kind_of(line, parser.parse(line)) for line in read_file(path)])
    cache.write_bytes(pickle.dumps({"paths": paths, "kinds": kinds}))
    return kinds


def reference(path: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(os.stat(path).st_mtime, TZ)


# -- the measured run ---------------------------------------------------------------------
class FakeIds:
    """persist.IdPool without the database (primary keys for new messages)."""

    def __init__(self):
        self.next = 1

    def take(self, n: int) -> list[int]:
        self.next += n
        return list(range(self.next - n, self.next))


def run(paths: list[str], kinds: list[list[str]], write: bool, slot_dir: Path) -> dict:
    """The ingestion path, each piece of work through its (stage, kind) slot."""
    slots = build_slots(slot_dir)
    names: dict[tuple[str, str], int] = {}

    def slot(stage: str, kind: str):
        n = names.setdefault((stage, kind), len(names))
        if n >= SLOTS:
            raise SystemExit("too many (stage, kind) pairs for the slots")
        return getattr(slots, f"s{n}")

    if write:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smtplog.settings")
        django.setup()
        from smtplog.ingest import persist

        take_batch, write_batch = persist.take_batch, persist.write_batch
    else:
        take_batch = write_batch = None
    from smtplog.ingest.correlate import Correlator, InternalHops
    from smtplog.postfix.parser import LineParser

    noop = slot("calibration", "an empty call")
    correlator = Correlator(TZ, InternalHops(["127.0.0.1", "::1", "localhost"]))
    handlers = Correlator._handlers
    ids = FakeIds()
    read_slot = slot("read", "all")

    def nothing(_):
        return None

    for n in range(1000):
        noop(nothing, n)
    for path, path_kinds in zip(paths, kinds, strict=True):
        lines = read_slot(read_file, path)
        parser = LineParser(TZ, reference=reference(path))
        parse = parser.parse
        for start in range(0, len(lines), BATCH_LINES):
            batch = lines[start : start + BATCH_LINES]
            batch_kinds = path_kinds[start : start + BATCH_LINES]
            records = []
            for line, kind in zip(batch, batch_kinds, strict=True):
                rec = slot("parse", kind)(parse, line)
                if rec is not None:
                    records.append((rec, kind))
            for rec, kind in records:
                handler = handlers.get(rec.__class__)
                if handler is not None:
                    slot("correlate", kind)(handler, correlator, rec)
            if write:
                out = slot("write", "take_batch")(take_batch, correlator, ids)
                slot("write", "write_batch")(write_batch, out)
            else:
                correlator.reset_batch()
                slot("correlate", "forget_old")(correlator.forget_old)
    return {f"cgslot_{n}": key for key, n in names.items()}


def inclusive_costs(out: Path) -> dict[str, int]:
    """Inclusive Ir of each cgslot_N function in a callgrind output file."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:(cgslot_\d+)\b", line)
        if m:
            costs[m[2]] = int(m[1].replace(",", ""))
    total = re.search(r"([\d,]+) \([^)]*\)\s+PROGRAM TOTALS", text)
    costs["total"] = int(total[1].replace(",", "")) if total else 0
    return costs


def table(kinds: list[list[str]], names: dict[str, tuple[str, str]], costs: dict[str, int]):
    counts = Counter(k for per_file in kinds for k in per_file)
    lines = sum(counts.values())
    cost = {key: costs.get(slot, 0) for slot, key in names.items()}
    calls_noop = 1000
    overhead = cost.pop(("calibration", "an empty call"), 0) / calls_noop
    read = cost.pop(("read", "all"), 0) / lines
    print(f"lines: {lines:,}; program total {costs['total']:,} Ir")
    print(f"slot call overhead {overhead:,.0f} Ir per call (subtracted below)")
    print(f"read (files.read_batches, gzip included): {read:,.0f} Ir per line on average\n")
    head = f"{'kind':42} {'share':>6} {'parse':>7} {'correlate':>9} {'sum':>7}"
    print(head)
    print("-" * len(head))
    totals = Counter()
    for kind, n in sorted(counts.items(), key=lambda kv: (kv[0][:3] != "rec", -kv[1])):
        parse = cost.get(("parse", kind), 0) / n - overhead
        corr = cost.get(("correlate", kind), 0) / n
        if ("correlate", kind) in cost:
            corr -= overhead
        totals["parse"] += parse * n
        totals["correlate"] += corr * n
        print(f"{kind:42} {n / lines:6.1%} {parse:7,.0f} {corr:9,.0f} {parse + corr:7,.0f}")
    forget = cost.pop(("correlate", "forget_old"), 0) / lines
    take = cost.get(("write", "take_batch"), 0) / lines
    write = cost.get(("write", "write_batch"), 0) / lines
    print("-" * len(head))
    print(
        f"{'all lines (mean)':42} {1:6.0%} {totals['parse'] / lines:7,.0f} "
        f"{totals['correlate'] / lines + forget:9,.0f}"
    )
    parse, corr = totals["parse"] / lines, totals["correlate"] / lines + forget
    summary = f"read {read:,.0f}, parse {parse:,.0f}, correlate {corr:,.0f}"
    if take or write:
        summary += f", take_batch {take:,.0f}, write_batch {write:,.0f} (client side)"
    print(f"\nper line on average: {summary}; forget_old {forget:,.0f} of the correlate")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--month", type=Path, default=REPO / "bench" / "out" / "profile")
    options.add_argument("--relay", help="one relay's files only (e.g. smtp1)")
    options.add_argument("--days", type=int, help="only the last N files of each relay")
    options.add_argument("--write", action="store_true", help="also write into DATABASE_URL")
    options.add_argument("--inner", type=Path, help=argparse.SUPPRESS)
    args = options.parse_args()
    paths = month_files(args.month, args.relay, args.days)
    work = args.month / "profile-work"
    work.mkdir(exist_ok=True)
    kinds = classify(paths, work / f"kinds-{args.relay}-{args.days}.pickle")
    if args.inner:  # under callgrind, with the collector as ingestion runs it
        from smtplog.ingest.memory import fewer_collections

        with fewer_collections():
            names = run(paths, kinds, args.write, work)
        args.inner.write_bytes(pickle.dumps(names))
        return
    build_slots(work)
    with tempfile.TemporaryDirectory() as tmp:
        names_file, out = Path(tmp) / "names", Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--month",
            str(args.month),
            "--inner",
            str(names_file),
        ]
        cmd += ["--relay", args.relay] if args.relay else []
        cmd += ["--days", str(args.days)] if args.days else []
        cmd += ["--write"] if args.write else []
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        names = pickle.loads(names_file.read_bytes())
        table(kinds, names, inclusive_costs(out))


if __name__ == "__main__":
    main()
