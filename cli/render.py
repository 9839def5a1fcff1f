"""Rich rendering helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


class ByteProgress:
    """A Rich progress bar fed by (bytes done, bytes total); shown only for
    files big enough to be worth watching (over ~200 KB: a few thousand rows)."""

    def __init__(self, label: str, min_bytes: int = 200_000):
        self.label = label
        self.min_bytes = min_bytes
        self.progress = None
        self.task = None
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_bytes or not err_console.is_terminal:
            return
        if self.progress is None or total != self.total:
            self.close()
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                console=err_console, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
            self.total = total
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
