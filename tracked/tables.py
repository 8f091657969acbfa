"""Tables that fit the terminal, and plain tab-separated text when stdout is not one.

On a terminal (rich): every column gets at least its header's width, so a header is never
split; columns marked `shrink` (names, aliases, reasons) are cut with an ellipsis down to
`min_width`; when even that does not fit, whole columns are dropped, least important first
(highest `priority`), and a note under the table names them (`--json` has everything). Columns
with priority 0 (run ids, versions) are never dropped nor cut: an id is always whole.

Piped (`tracked runs | cut -f1`): a header line and one line per row, tab-separated, nothing
cut, no title; notes go to stderr so the data stays clean.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Column", "Output", "Table"]

GAP = 3  # " │ " between two columns


@dataclass(frozen=True)
class Column:
    header: str
    priority: int = 1  # 0: never dropped; higher numbers are dropped first
    shrink: bool = False  # may be cut with an ellipsis, down to min_width
    min_width: int = 8
    justify: str = "left"
    group: str = ""  # "metric": dropped metric columns are named one by one in the note


@dataclass
class Table:
    columns: list[Column]
    title: str | None = None
    rows: list[tuple[list[str], str | None]] = field(default_factory=list)

    def add_row(self, *cells: Any, style: str | None = None) -> None:
        assert len(cells) == len(self.columns), (cells, self.columns)
        self.rows.append(([("" if c is None else str(c)) for c in cells], style))

    def fit(self, width: int) -> tuple[list[int], dict[int, int], list[Column]]:
        """(kept column indexes, their widths, dropped columns) for a terminal `width` wide."""
        from rich.cells import cell_len

        natural, minimum = [], []
        for i, column in enumerate(self.columns):
            cells = [cell_len(row[i]) for row, _ in self.rows]
            head = cell_len(column.header)
            full = max([head, *cells])
            natural.append(full)
            minimum.append(max(head, min(column.min_width, full)) if column.shrink else full)
        kept = list(range(len(self.columns)))

        def total(indexes: list[int]) -> int:
            return sum(minimum[i] for i in indexes) + GAP * max(len(indexes) - 1, 0)

        while total(kept) > width:
            droppable = [i for i in kept if self.columns[i].priority > 0]
            if not droppable:
                break
            kept.remove(max(droppable, key=lambda i: (self.columns[i].priority, i)))
        widths = {i: minimum[i] for i in kept}
        spare = width - total(kept)
        for i in sorted(kept, key=lambda i: (self.columns[i].priority, i)):
            grow = max(min(natural[i] - widths[i], spare), 0)
            widths[i] += grow
            spare -= grow
        dropped = [c for i, c in enumerate(self.columns) if i not in kept]
        return kept, widths, dropped


class Output:
    """Where a command's text goes: a rich console on a terminal, tab-separated lines if not."""

    def __init__(self, stream: TextIO | None = None, *, terminal: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.stream,
                highlight=False,
                soft_wrap=not self.terminal,
                force_terminal=self.terminal,
                width=None if self.terminal else 10_000,
            )
        return self._console

    @property
    def width(self) -> int:
        if not self.terminal:
            return 10_000
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return int(self.console.width)

    # -- text ------------------------------------------------------------------------------------

    def line(self, text: str = "", *, style: str | None = None) -> None:
        """One line of data (on stdout in both modes)."""
        if self.terminal:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""), overflow="fold")
        else:
            self.stream.write(text + "\n")

    def note(self, text: str) -> None:
        """A remark about the data: dim under a terminal's table, on stderr when piped."""
        if self.terminal:
            self.line(text, style="dim")
        else:
            sys.stderr.write(text + "\n")

    # -- numbers and times -------------------------------------------------------------------

    def num(self, value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}" if self.terminal else repr(value)
        return "" if value is None else str(value)

    def when(self, iso_text: str | None) -> str:
        """An ISO 8601 UTC time: to the minute on a terminal, whole when piped."""
        if not iso_text:
            return ""
        return iso_text[:16] + "Z" if self.terminal else iso_text

    def commit(self, sha: str | None) -> str:
        return (sha or "")[:8] if self.terminal else sha or ""

    def digest(self, value: str) -> str:
        return value.rsplit(":", 1)[-1][:12] if self.terminal else value

    # -- tables ----------------------------------------------------------------------------------

    def table(self, table: Table, *, what: str = "columns") -> None:
        if not self.terminal:
            self._tsv(table)
            return
        from rich import box
        from rich.table import Table as RichTable
        from rich.text import Text

        if table.title:
            self.line(table.title, style="bold")
        width = self.width
        kept, widths, dropped = table.fit(width)
        rich = RichTable(box=box.HEAVY_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
        for i in kept:
            column = table.columns[i]
            rich.add_column(
                column.header,
                width=widths[i],
                min_width=widths[i],
                max_width=widths[i],
                no_wrap=True,
                overflow="ellipsis",
                justify=column.justify,  # type: ignore[arg-type]
            )
        for cells, style in table.rows:
            rich.add_row(*(Text(cells[i]) for i in kept), style=style)
        needed = sum(widths.values()) + GAP * max(len(kept) - 1, 0)
        self.console.print(rich, width=max(width, needed))
        if dropped:
            metrics = [c.header for c in dropped if c.group == "metric"]
            other = [c.header for c in dropped if c.group != "metric"]
            parts = ([f"metrics {', '.join(metrics)}"] if metrics else []) + other
            self.note(f"not shown (terminal too narrow): {'; '.join(parts)}; --json has all")

    def _tsv(self, table: Table) -> None:
        def clean(text: str) -> str:
            return text.replace("\t", " ").replace("\n", " ")

        self.stream.write("\t".join(clean(c.header) for c in table.columns) + "\n")
        for cells, _ in table.rows:
            self.stream.write("\t".join(clean(c) for c in cells) + "\n")
