"""MetricBuffer: every point written exactly once and in order, whatever the writer does.

The sink is a plain callable that records batches: MetricBuffer only ever calls `write(batch)`.
Timing is driven by threading.Event, never by sleeping.
"""

from __future__ import annotations

import threading

import pytest

from tracked.record import MetricPoint
from tracked.writers.batching import MetricBuffer

WAIT = 10.0  # generous upper bound for an event; tests normally pass in milliseconds


def points(start: int, stop: int) -> list[MetricPoint]:
    return [MetricPoint("loss", float(i), step=i, timestamp=1) for i in range(start, stop)]


class Sink:
    """Records batches; sets `reached` once `target` points were written; may fail or block."""

    def __init__(self, target: int = 0, fail_on_call: int | None = None) -> None:
        self.batches: list[list[MetricPoint]] = []
        self.threads: set[str] = set()
        self.target = target
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.reached = threading.Event()
        self.failed = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()  # not blocking unless a test clears it

    def __call__(self, batch: list[MetricPoint]) -> None:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(WAIT)
        if self.fail_on_call == self.calls:
            self.failed.set()
            raise ConnectionError("store went away")
        self.batches.append(list(batch))
        if sum(len(b) for b in self.batches) >= self.target:
            self.reached.set()

    @property
    def written(self) -> list[MetricPoint]:
        return [p for batch in self.batches for p in batch]


def join(buffer: MetricBuffer) -> None:
    assert buffer._thread is not None
    buffer._thread.join(WAIT)
    assert not buffer._thread.is_alive()


def test_no_thread_when_nothing_is_added() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink)

    assert buffer._thread is None
    assert buffer.close() == []
    assert buffer._thread is None
    assert sink.calls == 0


def test_adding_an_empty_batch_starts_no_writes() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, interval=60)
    buffer.add([])

    assert buffer.close() == []
    assert sink.calls == 0


def test_all_points_delivered_in_order_across_batches() -> None:
    sink = Sink(target=12)
    buffer = MetricBuffer(sink, batch_size=3, interval=60, name="test-metrics")
    expected = points(0, 14)

    for i in range(0, 14, 2):  # two at a time, as a training loop would
        buffer.add(expected[i : i + 2])
    assert sink.reached.wait(WAIT)
    rest = buffer.close()

    assert sink.written + rest == expected
    assert all(len(batch) == 3 for batch in sink.batches)  # only full batches in the background
    assert sink.threads == {"test-metrics"}
    assert len(rest) < 3
    assert buffer.error is None


def test_many_points_in_one_add_are_split_into_batches() -> None:
    sink = Sink(target=10)
    buffer = MetricBuffer(sink, batch_size=5, interval=60)
    expected = points(0, 10)

    buffer.add(expected)
    assert sink.reached.wait(WAIT)

    assert buffer.close() == []
    assert sink.batches == [expected[:5], expected[5:]]


def test_partial_batch_is_returned_by_close_not_written() -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, batch_size=10, interval=60)
    buffer.add(points(0, 4))

    rest = buffer.close()

    assert rest == points(0, 4)  # the caller writes the tail, on its own thread, in order
    assert sink.calls == 0
    join(buffer)


def test_interval_flushes_a_partial_batch() -> None:
    sink = Sink(target=2)
    buffer = MetricBuffer(sink, batch_size=1000, interval=0.01)

    buffer.add(points(0, 2))
    assert sink.reached.wait(WAIT)

    assert buffer.close() == []
    assert sink.written == points(0, 2)


def test_writer_failing_midway_loses_and_duplicates_nothing() -> None:
    sink = Sink(fail_on_call=2)
    buffer = MetricBuffer(sink, batch_size=2, interval=60)
    expected = points(0, 7)

    buffer.add(expected)
    assert sink.failed.wait(WAIT)
    join(buffer)  # the thread stops after the first failure
    buffer.add(points(7, 9))  # still accepted, kept for close()
    rest = buffer.close()

    assert isinstance(buffer.error, ConnectionError)
    assert sink.written == expected[:2]
    assert rest == [*expected[2:], *points(7, 9)]
    assert sink.calls == 2  # no retry behind the caller's back


def test_writer_failing_on_the_first_batch_returns_everything() -> None:
    sink = Sink(fail_on_call=1)
    buffer = MetricBuffer(sink, batch_size=3, interval=60)

    buffer.add(points(0, 5))
    assert sink.failed.wait(WAIT)
    join(buffer)

    assert buffer.close() == points(0, 5)
    assert sink.written == []
    assert buffer.error is not None


def test_close_while_a_batch_is_being_written_waits_for_it() -> None:
    sink = Sink(target=2)
    sink.release.clear()
    buffer = MetricBuffer(sink, batch_size=2, interval=60)
    buffer.add(points(0, 2))
    assert sink.entered.wait(WAIT)
    buffer.add(points(2, 3))  # arrives while the writer is busy

    closer_result: list[list[MetricPoint]] = []
    closer = threading.Thread(target=lambda: closer_result.append(buffer.close()))
    closer.start()
    sink.release.set()
    closer.join(WAIT)

    assert not closer.is_alive()
    assert sink.written == points(0, 2)
    assert closer_result == [points(2, 3)]


@pytest.mark.parametrize("batch_size", [1, 2, 7])
def test_concurrent_adders_lose_nothing(batch_size: int) -> None:
    sink = Sink()
    buffer = MetricBuffer(sink, batch_size=batch_size, interval=0.001)
    start = threading.Event()

    def produce(offset: int) -> None:
        assert start.wait(WAIT)
        for i in range(offset, offset + 200, 4):
            buffer.add(points(i, i + 4))

    threads = [threading.Thread(target=produce, args=(k * 200,)) for k in range(3)]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(WAIT)
    rest = buffer.close()

    delivered = sink.written + rest
    assert sorted(p.step for p in delivered) == list(range(600))
    for k in range(3):  # each producer's points keep their order
        mine = [p.step for p in delivered if k * 200 <= p.step < (k + 1) * 200]
        assert mine == sorted(mine)
