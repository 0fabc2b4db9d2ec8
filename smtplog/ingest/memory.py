"""The cyclic garbage collector during ingestion (no Django here: bench/profile_ingest.py
runs the stages with it too)."""

from __future__ import annotations

import contextlib
import gc

# How many more container objects than were freed it takes for the cyclic garbage
# collector to run during ingestion (Python's default: 700). Reference counting frees
# what a run makes (records, rows, states): over one relay's month of bench/ingest.py
# (811,320 lines) the collector found 39 objects in cycles, and its 1,108 young, 101
# middle and 9 full passes (walking every message in flight) cost 1.1 of the 6.7 s of
# CPU the lines took; in a whole run, 14.4 s of CPU became 10.5. At this threshold it
# does not run at all there.
INGEST_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def fewer_collections():
    """The cyclic collector at INGEST_GC_THRESHOLD while the block runs (forked workers
    inherit it), as it was after."""
    before = gc.get_threshold()
    gc.set_threshold(INGEST_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
