"""torchrun --nproc_per_node=2 running a decorated DDP training (gloo on CPU): one run, rank 0's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tracked import tags as T

pytest.importorskip("torch")

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import os
    import time

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import tracked
    import tracked.store


    @tracked.tracked_training(name="ddp", all_ranks=True)
    def train(epochs=3, lr=0.1):
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(rank)  # each rank its own shard
        X = torch.randn(64, 4, generator=generator)
        y = X.sum(dim=1, keepdim=True)
        for epoch in range(epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(ddp(X), y)
            loss.backward()
            optimizer.step()
            tracked.log_metrics({"loss": loss.item(), "rank": float(rank)}, step=epoch)
        if rank == 0:
            # Wait until rank 1's system metrics are in rank 0's run (all_ranks=True); rank 1
            # waits at the barrier meanwhile, its monitor sampling.
            run_id = tracked.current_run().run_id
            uri = os.environ["TRACKED_TRACKING_URI"]
            client = tracked.store.client_for(uri, uri)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                keys = client.get_run(run_id).data.metrics
                if any(k.startswith("system/rank1/") for k in keys):
                    break
                time.sleep(0.2)
        dist.barrier()
        dist.destroy_process_group()
        return model


    train()
    """
)


def test_torchrun_with_two_ranks_records_one_run_with_rank_0s_metrics(store, tmp_path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), *sys.path])),
        "TRACKED_TRACKING_URI": store.uri,
        "TRACKED_EXPERIMENT": store.experiment,
        "TRACKED_PROJECT": "proj",
        "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.5",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = store.runs()  # one run for the launch, not one per rank
    assert run.info.status == "FINISHED"
    assert run.data.tags[T.WORLD_SIZE] == "2"
    assert run.data.params["epochs"] == "3" and run.data.params["lr"] == "0.1"
    history = store.metric_history(run.info.run_id, "rank")
    assert [m.value for m in history] == [0.0, 0.0, 0.0]  # rank 0's points only
    assert [m.step for m in store.metric_history(run.info.run_id, "loss")] == [0, 1, 2]
    assert any(k.startswith("system/rank0/") for k in run.data.metrics)
    assert any(k.startswith("system/rank1/") for k in run.data.metrics)
    versions = store.client.search_model_versions(f"run_id='{run.info.run_id}'")
    assert len(versions) == 1
