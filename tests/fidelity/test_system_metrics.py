"""MLflow's system metrics on tracked runs: every way a user asks for them gives `system/*`
series in the run, from the run's first second, through the journal (so an outage keeps them).

The sampling interval is MLflow's own setting (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL); the
tests wait on events and on the run's end, never on the clock.
"""

from __future__ import annotations

import threading

import mlflow
import pytest

import tracked
from tracked.capture.system import SystemMonitor

# What MLflow's CPU, disk and network monitors give on any machine (a GPU adds its own).
EXPECTED = {
    "system/cpu_utilization_percentage",
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
    "system/disk_usage_megabytes",
    "system/disk_usage_percentage",
    "system/disk_available_megabytes",
    "system/network_receive_megabytes",
    "system/network_transmit_megabytes",
}


@pytest.fixture
def fast_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")


def system_steps(store, run_id: str) -> dict[str, list[int]]:
    keys = [k for k in store.run(run_id).data.metrics if k.startswith("system/")]
    return {k: sorted(m.step for m in store.metric_history(run_id, k)) for k in keys}


def test_a_run_shorter_than_one_sampling_interval_still_holds_each_system_metric(store) -> None:
    # MLflow's default interval is 10 s; the run ends long before: the samples taken are kept.
    with tracked.run("short", log_system_metrics=True) as run:
        sum(range(1000))

    steps = system_steps(store, run.run_id)
    assert set(steps) >= EXPECTED, sorted(steps)
    assert all(s == [0] for s in steps.values()), steps


def test_the_monitor_publishes_one_point_per_interval_with_consecutive_steps(
    fast_sampling,
) -> None:
    points: list[tuple[int, dict[str, float]]] = []
    three = threading.Event()

    def sink(values, step):
        points.append((step, dict(values)))
        if len(points) >= 3:
            three.set()

    monitor = SystemMonitor(sink, first_step=5).start()
    assert three.wait(60), "no three points from the monitor"
    monitor.stop()

    assert [step for step, _ in points] == list(range(5, 5 + len(points)))
    assert all(set(values) >= EXPECTED for _, values in points)
    assert all(0.0 <= values["system/cpu_utilization_percentage"] <= 100.0 for _, values in points)


def test_samples_before_logging_averages_several_samples_into_one_point(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.02")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "4")
    published = threading.Event()
    points = []

    def sink(values, step):
        points.append(step)
        published.set()

    monitor = SystemMonitor(sink, node_id="node7").start()
    assert published.wait(60)
    monitor.stop()

    assert monitor.samples == 4 and monitor.prefix == "system/node7/"
    assert points[0] == 0


def test_mlflow_enable_system_metrics_logging_is_honoured_by_a_decorated_training(
    store, fast_sampling, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    mlflow.enable_system_metrics_logging()  # MLflow's global switch, as users turn it on
    try:

        @tracked.tracked_training(name="sysmetrics")
        def train(n):
            return {"total": float(sum(range(n)))}

        train(10_000)
    finally:
        mlflow.disable_system_metrics_logging()

    run = tracked.last_run()
    assert set(system_steps(store, run.run_id)) >= EXPECTED


def test_mlflow_start_run_with_log_system_metrics_inside_a_scope_samples_the_child(
    store,
) -> None:
    with (
        tracked.run("outer") as outer,
        mlflow.start_run(run_name="inner", nested=True, log_system_metrics=True) as inner,
    ):
        mlflow.log_metric("x", 1.0)

    assert inner.info.run_id != outer.run_id
    assert set(system_steps(store, inner.info.run_id)) >= EXPECTED
    assert not set(system_steps(store, outer.run_id))  # the outer run did not ask


def test_system_metrics_survive_a_store_outage_and_arrive_with_sync(store, closed_port_uri) -> None:
    with tracked.run("offline", tracking_uri=closed_port_uri, log_system_metrics=True):
        sum(range(1000))

    tracked.sync(tracking_uri=store.uri)

    [stored] = store.runs()
    assert set(system_steps(store, stored.info.run_id)) >= EXPECTED


def test_a_resumed_run_continues_its_system_metric_steps(store) -> None:
    with tracked.run("job", log_system_metrics=True) as first:
        pass

    with tracked.run("job", resume=first.run_id, log_system_metrics=True) as second:
        pass

    assert second.run_id == first.run_id
    steps = system_steps(store, first.run_id)
    assert steps["system/cpu_utilization_percentage"] == [0, 1], steps


def test_without_asking_a_run_records_no_system_metrics(store, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    with tracked.run("quiet") as run:
        pass

    assert system_steps(store, run.run_id) == {}
