"""What a run shows on stderr: its messages (``stderr_say``), the training progress (``TrainProgress``; ``quiet``
gives an object with the same methods that prints nothing) and a bar for other long work (``bar``)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

Say = Callable[[str], None]


def stderr_say(quiet: bool) -> Say:
    """The run's messages (rich markup) on stderr; nothing when quiet. A non-quiet ``say`` carries
    ``shows_progress``: work it is handed (the data preparation's generator) may show a bar too (``bar``)."""
    if quiet:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)

    def say(msg: str) -> None:
        console.print(msg)

    say.shows_progress = True
    return say


@contextmanager
def bar(title: str, total: int, say: Say) -> Iterator[Callable[[int, str], None]]:
    """A progress bar on stderr while the block runs, when ``say`` shows progress; yields ``update(done, info)``."""
    if not getattr(say, "shows_progress", False):
        yield lambda done, info="": None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[info]}"), console=Console(stderr=True))
    task = progress.add_task(title, total=total, info="")
    progress.start()
    try:
        yield lambda done, info="": progress.update(task, completed=done, info=info)
    finally:
        progress.stop()


class TrainProgress:
    def __init__(self, title: str, quiet: bool = False):
        self.title, self.quiet = title, quiet
        self._progress = None

    def start(self, epochs: int, batches: int, first_epoch: int = 0) -> None:
        if self.quiet:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"), console=Console(stderr=True), transient=False,
        )
        self._progress.start()
        self._epochs = self._progress.add_task(f"{self.title} epochs", total=epochs, completed=first_epoch, info="")
        self._batches = self._progress.add_task("  batches", total=batches, info="")

    def step(self, done: int, loss: float) -> None:
        if self._progress:
            self._progress.update(self._batches, completed=done, info=f"loss {loss:.4f}")

    def epoch(self, epoch: int, logs: dict, monitor: str) -> None:
        if self._progress:
            info = f"val_loss {logs['val_loss']:.4f}"
            if monitor != "val_loss":
                info += f"  {monitor} {logs[monitor]:.4f}"
            self._progress.update(self._epochs, completed=epoch + 1, info=info)
            self._progress.reset(self._batches, info="")

    def close(self) -> None:
        if self._progress:
            self._progress.stop()
            self._progress = None
