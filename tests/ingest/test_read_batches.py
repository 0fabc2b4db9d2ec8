"""files.read_batches: every complete line once, in order, each batch with the byte position
after its last line; a last line without its newline is left for later."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from smtplog.ingest.files import read_batches

lines_st = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=60)


@given(
    lines=lines_st,
    tail=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
    batch=st.integers(1, 25),
    skip=st.integers(0, 60),
)
def test_batches_hold_every_complete_line_once_with_its_position(lines, tail, batch, skip):
    data = b"".join(line + b"\n" for line in lines) + tail
    skip = min(skip, len(lines))
    start = sum(len(line) + 1 for line in lines[:skip])
    got, positions = [], []
    for chunk, position in read_batches(io.BytesIO(data), start, batch):
        assert 0 < len(chunk) <= batch
        got += chunk
        positions.append(position)
    assert got == lines[skip:]
    expected, offset, count = [], start, 0
    for line in lines[skip:]:
        offset += len(line) + 1
        count += 1
        if count == batch:
            expected.append(offset)
            count = 0
    if count:
        expected.append(offset)
    assert positions == expected


def test_a_stream_larger_than_one_read_is_cut_at_line_ends():
    line = b"x" * 999
    data = (line + b"\n") * 3000 + b"half"  # 3 MB: several 1 MiB reads
    batches = list(read_batches(io.BytesIO(data), 0, 1000))
    assert [len(chunk) for chunk, _ in batches] == [1000, 1000, 1000]
    assert all(chunk == [line] * 1000 for chunk, _ in batches)
    assert [position for _, position in batches] == [1_000_000, 2_000_000, 3_000_000]
