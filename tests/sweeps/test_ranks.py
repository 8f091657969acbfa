"""Ranks: which process of a launch records the run, read from the launchers' variables; the
other ranks record nothing and cost nothing."""

from __future__ import annotations

import logging
import threading

from hypothesis import given
from hypothesis import strategies as st

import tracked
from tracked import tags as T
from tracked.capture.ranks import launch_key, process_rank

_NOISE = st.dictionaries(
    st.sampled_from(
        [
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "NODE_RANK",
            "GROUP_RANK",
            "LOCAL_WORLD_SIZE",
            "SLURM_PROCID",
            "SLURM_NTASKS",
            "SLURM_LOCALID",
            "SLURM_NODEID",
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "PMI_RANK",
            "PMI_SIZE",
        ]
    ),
    st.one_of(st.integers(-3, 70).map(str), st.sampled_from(["", " 1", "x", "1.5", "0 "])),
)


@given(_NOISE)
def test_any_environment_gives_a_rank_inside_its_world(env) -> None:
    found = process_rank(env)
    assert found.world_size >= 1
    assert found.rank is None or 0 <= found.rank < found.world_size
    assert found.owns_run == (found.rank == 0)


@given(_NOISE, st.integers(0, 63))
def test_torch_rank_wins_over_every_other_convention(env, rank) -> None:
    """torchrun inside one SLURM task: every process has the task's SLURM_PROCID, its own RANK."""
    found = process_rank({**env, "RANK": str(rank)})
    assert found.rank == rank and found.source == "torch"


def test_a_process_no_launcher_started_owns_its_run() -> None:
    assert process_rank({}).owns_run
    assert process_rank({"PATH": "/bin"}).world_size == 1


def _torchrun(nodes: int, per_node: int) -> list[dict[str, str]]:
    world = nodes * per_node
    return [
        {
            "RANK": str(n * per_node + local),
            "LOCAL_RANK": str(local),
            "GROUP_RANK": str(n),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(per_node),
        }
        for n in range(nodes)
        for local in range(per_node)
    ]


def _lightning(nodes: int, per_node: int, with_local_world: bool) -> list[dict[str, str]]:
    out = []
    for n in range(nodes):
        for local in range(per_node):
            env = {
                "NODE_RANK": str(n),
                "LOCAL_RANK": str(local),
                "WORLD_SIZE": str(nodes * per_node),
            }
            if with_local_world:
                env["LOCAL_WORLD_SIZE"] = str(per_node)
            out.append(env)
    return out


def _slurm(nodes: int, per_node: int) -> list[dict[str, str]]:
    return [
        {
            "SLURM_PROCID": str(n * per_node + local),
            "SLURM_LOCALID": str(local),
            "SLURM_NODEID": str(n),
            "SLURM_NTASKS": str(nodes * per_node),
        }
        for n in range(nodes)
        for local in range(per_node)
    ]


def _mpi(nodes: int, per_node: int) -> list[dict[str, str]]:
    world = nodes * per_node
    return [
        {"OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_SIZE": str(world)} for r in range(world)
    ]


@given(
    st.sampled_from(["torchrun", "lightning", "lightning-local-world", "slurm", "mpi"]),
    st.integers(1, 4),
    st.integers(1, 8),
)
def test_exactly_one_process_of_a_launch_owns_the_run(launcher, nodes, per_node) -> None:
    envs = {
        "torchrun": lambda: _torchrun(nodes, per_node),
        "lightning": lambda: _lightning(nodes, per_node, False),
        "lightning-local-world": lambda: _lightning(nodes, per_node, True),
        "slurm": lambda: _slurm(nodes, per_node),
        "mpi": lambda: _mpi(nodes, per_node),
    }[launcher]()
    found = [process_rank(env) for env in envs]
    assert sum(r.owns_run for r in found) == 1
    assert len({r.label for r in found}) == len(found)  # rank<N> keys never collide
    assert all(r.world_size == nodes * per_node for r in found)


def test_the_launch_key_is_shared_by_the_ranks_of_one_launch() -> None:
    assert launch_key({"TORCHELASTIC_RUN_ID": "abc", "RANK": "1"}) == "torchrun:abc"
    assert launch_key({"TORCHELASTIC_RUN_ID": "none", "SLURM_JOB_ID": "42"}) == "slurm:42."
    assert launch_key({"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}) == (
        "master:10.0.0.1:29500"
    )
    assert launch_key({}) is None


def test_a_rank_other_than_0_records_nothing_and_returns_the_result(
    store, monkeypatch, caplog, tmp_path
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = object()
    threads = set(threading.enumerate())

    @tracked.tracked_training
    def train(lr=0.1):
        tracked.log_metrics({"loss": 0.5}, step=1)
        tracked.log_params({"batch": 32})
        tracked.current_run().log_metrics({"acc": 1.0})
        return result

    with caplog.at_level(logging.DEBUG, logger="tracked"):
        assert train() is result
        with tracked.run("block") as run:
            run.log_metrics({"loss": 0.1})
            run.log_text("x", "notes.txt")
        tracked.log_metrics({"outside": 1.0})  # no run at all: silent on this rank too
    assert caplog.records == []
    assert run.run_id is None and run.journal_path is None
    assert not (tmp_path / "spool").exists()  # no journal
    assert set(threading.enumerate()) <= threads  # no sender, no git thread
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert store.runs() == []


def test_rank_0_of_a_launch_records_the_run_with_its_world_size(store, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")

    @tracked.tracked_training
    def train(lr=0.1):
        tracked.log_metrics({"loss": 0.5}, step=1)
        return {"acc": 1.0}

    train()
    (run,) = store.runs()
    assert run.data.tags[T.WORLD_SIZE] == "4"
    assert run.data.metrics == {"loss": 0.5, "acc": 1.0}
