"""MLflow tracking: params, per-epoch metrics and artifacts, in an embedded SQLite store by default."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional


def default_uri(runs_dir: str) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Tracker:
    """A thin wrapper so the rest of forgeml never imports mlflow (slow) unless tracking is on."""

    def __init__(self, uri: Optional[str], runs_dir: str, experiment: str, run_name: str):
        self.enabled = (uri or "").lower() != "none"
        self._run = None
        if not self.enabled:
            return
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # an unreachable server fails in seconds
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        import mlflow

        for name in ("mlflow", "alembic"):  # after the import: mlflow sets up its own loggers
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = uri or default_uri(runs_dir)
        try:
            mlflow.set_tracking_uri(self.uri)
            if mlflow.get_experiment_by_name(experiment) is None:
                artifacts = (Path(runs_dir).resolve() / "mlartifacts").as_uri() if self.uri.startswith("sqlite") else None
                mlflow.create_experiment(experiment, artifact_location=artifacts)
            mlflow.set_experiment(experiment)
            self._run = mlflow.start_run(run_name=run_name)
        except Exception as exc:  # unreachable server, bad URI scheme, unwritable store
            from forgeml.errors import ConfigError

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"MLflow tracking at {self.uri} failed: {first[:300]}; "
                              "fix --tracking-uri, or pass --tracking-uri none to train without tracking") from None
        self.run_id = self._run.info.run_id

    def params(self, config: dict) -> None:
        if self._run:
            import mlflow

            mlflow.log_params({k: str(v)[:500] for k, v in _flatten(config).items()})

    def epoch(self, logs: dict, prefix: str = "") -> None:
        if self._run:
            import mlflow

            step = int(logs["epoch"])
            mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in logs.items() if k != "epoch" and v is not None}, step=step)

    def final(self, metrics: dict, run_dir: Path) -> None:
        if not self._run:
            return
        import mlflow

        flat = {}
        for split in ("val", "test"):
            flat.update({f"{split}_{k}": v for k, v in metrics[split].items() if isinstance(v, (int, float)) and k != "n"})
        if metrics.get("baseline"):
            flat.update({f"baseline_test_{k}": v for k, v in metrics["baseline"]["test"].items() if isinstance(v, (int, float)) and k != "n"})
        mlflow.log_metrics({k: float(v) for k, v in flat.items()})
        for name in ("metrics.json", "manifest.json", "config.yaml", "report.html"):
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name))
        if (run_dir / "plots").is_dir():
            mlflow.log_artifacts(str(run_dir / "plots"), artifact_path="plots")

    def end(self, status: str = "FINISHED") -> None:
        if self._run:
            import mlflow

            mlflow.end_run(status=status)
            self._run = None
