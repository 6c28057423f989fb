"""Rich progress for training (stderr). ``quiet`` gives an object with the same methods that prints nothing."""
from __future__ import annotations


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
