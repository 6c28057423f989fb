"""forgeml tune against a real PostgreSQL server, as a team shares one study between machines: the test starts
Debian's PostgreSQL (installed by .ci/run) on 127.0.0.1 in a throwaway cluster, runs two worker processes against one
study through ``--storage postgresql://...``, reads the study back from the database, and stops the server."""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import cli, user_error
from test_tune import config_file

optuna = pytest.importorskip("optuna")
pytest.importorskip("psycopg", reason="the tune extra's PostgreSQL driver (psycopg) is not installed")
BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None) or (
    os.path.dirname(shutil.which("initdb")) if shutil.which("initdb") else None)
if BIN is None:
    pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): .ci/run installs Debian's postgresql",
                allow_module_level=True)
pytestmark = pytest.mark.usefixtures("one_thread")


def _as_server_user(args: list[str], **kw) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its programs as the postgres user when this is root."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def postgres_url():
    folder = tempfile.mkdtemp(prefix="forgeml-pg-")  # under /tmp: pytest's own folders are closed to other users
    data = os.path.join(folder, "data")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _as_server_user([f"{BIN}/initdb", "-D", data, "-U", "forgeml", "--auth=trust", "-E", "UTF8"])
    _as_server_user([f"{BIN}/pg_ctl", "-D", data, "-l", os.path.join(folder, "server.log"), "-w", "-t", "60", "-o",
                     f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"])
    try:
        _as_server_user([f"{BIN}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "forgeml", "optuna"])
        yield f"postgresql://forgeml@127.0.0.1:{port}/optuna"
    finally:
        _as_server_user([f"{BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


def _tune(folder, postgres_url: str, name: str, space: dict, trials: int, *args) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = config_file(folder, {"space": space, "trials": trials, "pruner": "none"})
    assert cli("tune", "--config", path, "--storage", postgres_url, "--name", name, "--quiet", *args) == 0
    return json.loads((folder / "runs" / name / "tune.json").read_text())


def test_two_workers_share_one_study_and_another_machine_joins_it(tmp_path, capsys, postgres_url):
    space = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}
    summary = _tune(tmp_path / "a", postgres_url, "bc-pg", space, 4, "--workers", "2")
    assert summary["storage"].startswith("postgresql://forgeml@127.0.0.1:")
    assert len(summary["trials"]) == 4 and {t["worker"] for t in summary["trials"]} == {1, 2}
    assert not list((tmp_path / "a" / "runs" / "bc-pg").glob("study.*"))  # nothing local: the study is on the server
    # the study lives in the database: anyone with the URL reads the same trials
    study = optuna.load_study(study_name="bc-pg", storage=postgres_url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and max(t.value for t in done) == pytest.approx(summary["best"]["value"])

    # another machine (another folder) with the same URL and name joins the study: it runs only the missing trial
    joined = _tune(tmp_path / "b", postgres_url, "bc-pg", space, 5)
    assert len(joined["trials"]) == 5 and [t["trial"] for t in joined["trials"]][:4] == [1, 2, 3, 4]
    assert len(optuna.load_study(study_name="bc-pg", storage=postgres_url).trials) == 5
    # ... but not with another search under the same name
    (tmp_path / "c").mkdir()
    msg = user_error(capsys, "tune", "--config", config_file(tmp_path / "c", {"space": {"train.lr": [1e-3, 2e-3]}}),
                     "--storage", postgres_url, "--name", "bc-pg")
    assert "searches another config or space" in msg
