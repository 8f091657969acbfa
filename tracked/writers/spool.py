"""The offline spool: where a run goes when the tracking store cannot take it (issue #7)."""

from __future__ import annotations

from typing import Any

from tracked.problems import logger

__all__ = ["spool_run"]


def spool_run(run: Any) -> None:
    """Placeholder until the durable spool lands: say plainly that the run was not kept."""
    logger.warning(
        "tracked: run %r was not recorded (the store failed) and the offline spool is not "
        "available yet",
        run.record.name,
    )
