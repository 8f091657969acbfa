"""Which process of a distributed training this is, from the launchers' environment variables.

Read in this order, the first convention present deciding:

- torchrun / `torch.distributed` / Accelerate / DeepSpeed: `RANK`, `LOCAL_RANK`, `WORLD_SIZE`
- PyTorch Lightning's own launcher: `NODE_RANK` and `LOCAL_RANK` (with `LOCAL_WORLD_SIZE` the
  global rank is computed; without it only node 0's local rank 0 is known to be rank 0)
- MPI: `OMPI_COMM_WORLD_RANK`/`_SIZE`/`_LOCAL_RANK` (Open MPI), `PMI_RANK`/`PMI_SIZE` (MPICH,
  Intel MPI)
- SLURM: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NODEID` (last: torchrun inside
  one SLURM task sets `RANK` per process while every process has the task's `SLURM_PROCID`)

A value that is not an integer is ignored (that convention is skipped). Pure: no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Rank", "launch_key", "process_rank"]


@dataclass(frozen=True)
class Rank:
    """This process's place in its training; a lone process is rank 0 of 1."""

    rank: int | None  # global rank; None when only "not rank 0" is known
    world_size: int
    local_rank: int = 0
    node_rank: int = 0
    source: str = ""  # the convention it was read from ("" for a lone process)

    @property
    def owns_run(self) -> bool:
        """Whether this process records the run (rank 0 does; the others record nothing)."""
        return self.rank == 0

    @property
    def label(self) -> str:
        """`rank<N>`, or `node<n>-local<l>` when the global rank is not known."""
        if self.rank is not None:
            return f"rank{self.rank}"
        return f"node{self.node_rank}-local{self.local_rank}"


ALONE = Rank(rank=0, world_size=1)


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def process_rank(env: Mapping[str, str] | None = None) -> Rank:
    """This process's rank, from `env` (default: the process's environment)."""
    env = os.environ if env is None else env
    rank = _int(env, "RANK")
    if rank is not None:
        return Rank(
            rank=rank,
            world_size=max(_int(env, "WORLD_SIZE") or 1, rank + 1),
            local_rank=_int(env, "LOCAL_RANK") or 0,
            node_rank=_int(env, "GROUP_RANK") or _int(env, "NODE_RANK") or 0,
            source="torch",
        )
    local = _int(env, "LOCAL_RANK")
    if local is not None:
        node = _int(env, "NODE_RANK") or 0
        per_node = _int(env, "LOCAL_WORLD_SIZE")
        if per_node is not None and per_node > local:
            global_rank: int | None = node * per_node + local
        else:
            global_rank = local if node == 0 else None
        floor = (global_rank if global_rank is not None else local) + 1
        return Rank(
            rank=global_rank,
            world_size=max(_int(env, "WORLD_SIZE") or 1, floor),
            local_rank=local,
            node_rank=node,
            source="lightning",
        )
    for rank_name, size_name, local_name, source in (
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "mpi"),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "mpi"),
        ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "slurm"),
    ):
        rank = _int(env, rank_name)
        if rank is not None:
            return Rank(
                rank=rank,
                world_size=max(_int(env, size_name) or 1, rank + 1),
                local_rank=_int(env, local_name) or 0,
                node_rank=(_int(env, "SLURM_NODEID") or 0) if source == "slurm" else 0,
                source=source,
            )
    return ALONE


def launch_key(env: Mapping[str, str] | None = None) -> str | None:
    """An id every process of one launch shares (torchrun's run id, a SLURM job step), by which
    the other ranks find rank 0's run; None when the launcher gives none."""
    env = os.environ if env is None else env
    elastic = env.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none":
        return f"torchrun:{elastic}"
    job = env.get("SLURM_JOB_ID")
    if job:
        return f"slurm:{job}.{env.get('SLURM_STEP_ID', '')}"
    address, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    if address and port:
        return f"master:{address}:{port}"
    return None
