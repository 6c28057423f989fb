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
            # inside another tracked run (forgeml cv's parent run): this run is its child
            self._run = mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None)
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

    def final(self, metrics: dict, run_dir: Path, model_files: Optional[list[str]] = None) -> None:
        """The run's metrics and files; the kept model's name (param ``chosen_model``, tag ``forgeml.model``) and
        its files (``model_files``, relative to run_dir) under the artifact folder ``model``."""
        if not self._run:
            return
        import mlflow

        if metrics.get("model"):
            mlflow.log_param("chosen_model", metrics["model"])
            mlflow.set_tag("forgeml.model", metrics["model"])
        choice = metrics.get("choice") or {}
        if (choice.get("baseline") or {}).get("validation") is not None:
            mlflow.log_metric(f"baseline_val_{choice['metric']}", float(choice["baseline"]["validation"]))
        if (choice.get("baseline") or {}).get("verdict"):
            mlflow.set_tag("forgeml.baseline_verdict", choice["baseline"]["verdict"])

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
        for name in model_files or []:  # the model itself, loadable with the manifest beside it
            path = run_dir / name
            if path.is_file() and path.parent != run_dir:  # a model in a folder of its own (the ensemble's): all of it
                mlflow.log_artifacts(str(path.parent), artifact_path=f"model/{path.parent.name}")
            elif path.is_file():
                mlflow.log_artifact(str(path), artifact_path="model")
        if model_files and (run_dir / "manifest.json").is_file():
            mlflow.log_artifact(str(run_dir / "manifest.json"), artifact_path="model")

    def summary(self, metrics: dict, files: list[Path]) -> None:
        """A parent run's own results (forgeml cv: the mean of each test metric across folds, cv.json)."""
        if not self._run:
            return
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        for path in files:
            if path.is_file():
                mlflow.log_artifact(str(path))

    def end(self, status: str = "FINISHED") -> None:
        if self._run:
            import mlflow

            mlflow.end_run(status=status)
            self._run = None
