"""The rest's worker hands a central log's lines to the relays read apart (ingest.feed):
what a relay's worker is handed is what it would have read, file by file; whatever the
feeder does (skips a file, fails in one, is gone), the relay's worker knows where to
read on by itself, and neither side waits for ever on the other."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from smtplog.ingest.feed import Channels, take_apart

BATCHES = [
    ([b"smtp1 a", b"smtp1 b"], 100, "t1"),
    ([], 180, "t2"),  # a batch without a line of this relay moves its position too
    ([b"smtp1 c"], 260, "t3"),
]


@pytest.fixture
def pipe():
    channels = Channels(["smtp1"])
    feeder, fed = channels.feeder(), channels.fed("smtp1")
    yield feeder, fed
    fed.close()  # as a worker ends: the reader first, then the feeder's thread is done
    feeder.close()
    channels.close()


def hand_out(feeder, path, start, batches, fail_after=None):
    with feeder.file(path):
        if start is None:
            return  # not handed out (a part stands elsewhere, nothing new...)
        assert feeder.open(path, start)
        for n, (lines, position, tail) in enumerate(batches):
            if n == fail_after:
                raise OSError("the disk fails")
            feeder.hand_out({"smtp1": lines}, position, tail)


def test_a_file_handed_out_whole_gives_its_batches_in_order(pipe):
    feeder, fed = pipe
    hand_out(feeder, "mail.log", 0, BATCHES)
    hand_out(feeder, "mail.log.1", 40, BATCHES[:1])
    with fed.file("mail.log"):
        assert list(fed.batches("mail.log", 0)) == BATCHES
    assert fed.whole
    with fed.file("mail.log.1"):
        assert list(fed.batches("mail.log.1", 40)) == BATCHES[:1]
    assert fed.whole


def test_a_file_the_feeder_skips_or_fails_in_is_read_on_by_the_relays_worker(pipe):
    feeder, fed = pipe
    hand_out(feeder, "a.log", None, BATCHES)
    with pytest.raises(OSError):
        hand_out(feeder, "b.log", 0, BATCHES, fail_after=2)
    hand_out(feeder, "c.log", 0, BATCHES)
    with fed.file("a.log"):
        assert list(fed.batches("a.log", 0)) == []
    assert not fed.whole
    with fed.file("b.log"):
        assert list(fed.batches("b.log", 0)) == BATCHES[:2]  # then read on from 180
    assert not fed.whole
    with fed.file("c.log"):
        assert list(fed.batches("c.log", 0)) == BATCHES
    assert fed.whole and not fed.ended


def test_a_file_the_relays_worker_reads_nothing_of_is_let_go(pipe):
    """Nothing new for it in a file (or an error before reading): what the feeder said
    of that file is taken anyway, and the next file comes in step."""
    feeder, fed = pipe
    hand_out(feeder, "a.log", 0, BATCHES)
    hand_out(feeder, "b.log", 0, BATCHES[1:])
    with fed.file("a.log"):
        pass
    with fed.file("b.log"):
        assert list(fed.batches("b.log", 0)) == BATCHES[1:]
    assert fed.whole


def test_out_of_step_the_relays_worker_reads_everything_itself(pipe):
    feeder, fed = pipe
    hand_out(feeder, "a.log", 0, BATCHES)
    hand_out(feeder, "b.log", 0, BATCHES)
    with fed.file("b.log"):  # (a.log's news instead: a bug, never a wrong line)
        assert list(fed.batches("b.log", 0)) == []
    assert fed.ended and not fed.whole
    with fed.file("c.log"):
        assert list(fed.batches("c.log", 0)) == []
    feeder.close()  # the feeder does not wait for a reader that is gone


def test_a_start_the_relays_part_does_not_stand_at_is_not_taken(pipe):
    feeder, fed = pipe
    hand_out(feeder, "a.log", 0, BATCHES)
    with fed.file("a.log"):
        assert list(fed.batches("a.log", 100)) == []
    assert not fed.whole


def test_when_the_feeder_is_done_or_gone_the_relays_worker_reads_by_itself(pipe):
    feeder, fed = pipe
    hand_out(feeder, "a.log", 0, BATCHES)
    feeder.close()
    with fed.file("a.log"):
        assert list(fed.batches("a.log", 0)) == BATCHES
    with fed.file("b.log"):  # (the feeder stopped before it: a failure)
        assert list(fed.batches("b.log", 0)) == []
    assert fed.ended and not fed.whole


def test_a_killed_feeder_process_is_an_end_of_file_not_a_hang():
    channels = Channels(["smtp1"])
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def feeder_process():
        channels.keep_only(feeder=True)
        feeder = channels.feeder()
        with feeder.file("a.log"):
            feeder.open("a.log", 0)
            feeder.hand_out({"smtp1": BATCHES[0][0]}, 100, "t1")
            ready.set()
            signal.pause()  # killed here, mid-file

    proc = ctx.Process(target=feeder_process)
    proc.start()
    channels.keep_only("smtp1")
    fed = channels.fed("smtp1")
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with fed.file("a.log"):
        got = list(fed.batches("a.log", 0))
    assert got in ([], BATCHES[:1])  # (what reached the pipe before the kill)
    assert fed.ended and not fed.whole
    channels.close()


def test_a_relays_worker_gone_leaves_the_feeder_free():
    channels = Channels(["smtp1"])
    feeder = channels.feeder()
    channels.fed("smtp1").close()  # its worker ended (an error), reading nothing more
    for n in range(20):  # far more than the pipe and the queue hold
        with feeder.file(f"{n}.log"):
            if feeder.open(f"{n}.log", 0):  # (False once the feeder knows)
                feeder.hand_out({"smtp1": [b"x" * 100_000] * 20}, 1, "t")
    feeder.close()
    assert feeder.broken == {"smtp1"}
    channels.close()


def test_take_apart_gives_each_line_to_one_relay_or_the_rest_in_order():
    lines = [b"a1", b"b1", b"r1", b"a2", b"r2", b"b2"]
    masks = {
        "a": [line.startswith(b"a") for line in lines],
        "b": [line.startswith(b"b") for line in lines],
    }
    assert take_apart(lines, masks) == ([b"r1", b"r2"], {"a": [b"a1", b"a2"], "b": [b"b1", b"b2"]})
    assert take_apart(lines, {"a": masks["a"]}) == (
        [b"b1", b"r1", b"r2", b"b2"],
        {"a": [b"a1", b"a2"]},
    )
