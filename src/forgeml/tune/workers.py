"""--workers W > 1: W processes on this machine run trials of one study at once, each with its own seeded sampler,
through a storage every process opens (a JournalStorage file by default). Each worker is
``python -m forgeml.tune.workers`` reading its job (config, storage, study, worker number) as JSON on stdin."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Callable

Say = Callable[[str], None]


def run_workers(cfg, spec: dict, study_name: str, primary: str, quiet: bool, say: Say,
                tracking: dict | None = None) -> list[int]:
    """Start the workers, wait for all of them; their exit codes (0: done). Ctrl-C stops them too."""
    workers = cfg.tune.workers
    procs = []
    try:
        for k in range(workers):
            job = {"config": cfg.model_dump(mode="json"), "storage": spec, "study": study_name, "primary": primary,
                   "worker": k, "quiet": quiet, "tracking": tracking}
            proc = subprocess.Popen([sys.executable, "-m", "forgeml.tune.workers"], stdin=subprocess.PIPE, text=True)
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            procs.append(proc)
        say(f"{workers} workers started (processes {', '.join(str(p.pid) for p in procs)})")
        return [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()


def work(job: dict) -> None:
    """One worker: open the study and run trials until it holds tune.trials of them."""
    from forgeml.config import build_config
    from forgeml.train.pipeline import stderr_say
    from forgeml.tune.search import optimize, pruner, quiet_optuna, sampler
    from forgeml.tune.space import build_space
    from forgeml.tune.storage import open_storage

    optuna = quiet_optuna()
    cfg = build_config(job["config"], "tune worker")
    k = job["worker"]
    study = optuna.load_study(study_name=job["study"], storage=open_storage(job["storage"]),
                              sampler=sampler(cfg.tune, k), pruner=pruner(cfg.tune))
    tracking = job.get("tracking")
    if tracking:  # the study's parent run, active here too: each trial's run is nested under it
        import mlflow

        mlflow.set_tracking_uri(tracking["uri"])
        mlflow.start_run(run_id=tracking["parent"])
    optimize(study, cfg, build_space(cfg), job["primary"], stderr_say(job["quiet"]), job["quiet"], worker=k + 1,
             tracking=tracking)


def main() -> None:
    from forgeml.errors import ForgeMLError

    try:
        work(json.loads(sys.stdin.read()))
    except ForgeMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
