"""Terminal output: a rich progress bar for long work, silent for small inputs and when output
is not a terminal; and :func:`output_console`, which wraps lines for a terminal only."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

LARGE_INPUT_ROWS = 500_000
# the width given to output that is not a terminal: wide enough that no table is squeezed
UNWRAPPED_WIDTH = 10_000


def output_console(*, stderr: bool = False) -> Console:
    """A console for standard output (or error). On a terminal, lines wrap at its width; into
    a file, a pipe or a CI log nothing is wrapped or cut: a path or URL stays on one line and
    a table takes its natural width."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=UNWRAPPED_WIDTH)
    return console


class Progress:
    """``enabled=None`` shows the bar when ``rows`` is large and stderr is a terminal."""

    def __init__(self, *, enabled: bool | None = None, rows: int = 0) -> None:
        if enabled is None:
            enabled = rows >= LARGE_INPUT_ROWS and sys.stderr.isatty()
        self._bar: RichProgress | None = None
        if enabled:
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
        self._task: TaskID | None = None
        self._total = 0

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def start(self, description: str, total: int | None) -> None:
        """A task of ``total`` steps (None: not known beforehand)."""
        self._total = total or 0
        if self._bar is not None:
            self._task = self._bar.add_task(description, total=total)

    def more(self, steps: int) -> None:
        """Add ``steps`` to the bar's total (work found to be needed on the way)."""
        self._total += steps
        if self._bar is not None and self._task is not None and steps:
            self._bar.update(self._task, total=self._total)

    def step(self, _item: str = "") -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def advance(self, steps: int) -> None:
        """``steps`` steps done at once (rows of a chunk, say)."""
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, steps)
