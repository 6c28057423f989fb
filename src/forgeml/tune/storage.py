"""Where the study lives: a SQLite file in the run folder by default (a study resumes), a JournalStorage file when
several processes on this machine run trials, or any SQLAlchemy URL (PostgreSQL, MySQL) for several machines.

A storage is described by a small JSON spec ({"url": ...} or {"journal": path}) so that worker processes open the
same one. Opening it is bounded in time (a connect timeout) and a failure is one message, never a traceback."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from forgeml.errors import ConfigError

CONNECT_TIMEOUT_S = 10
DEFAULT_SQLITE = "study.db"
DEFAULT_JOURNAL = "study.journal"


def default_spec(run_dir: Path, workers: int) -> dict:
    """The run folder's own storage: the one already there (a resumed study), else SQLite for one process and a
    journal file for several (SQLite's single writer lock makes parallel trials wait on each other)."""
    journal, sqlite = run_dir / DEFAULT_JOURNAL, run_dir / DEFAULT_SQLITE
    if journal.is_file() or (workers > 1 and not sqlite.is_file()):
        return {"journal": str(journal.resolve()), "default": True}
    return {"url": f"sqlite:///{sqlite.resolve()}", "default": True}


def spec_for(url: Optional[str], run_dir: Path, workers: int) -> dict:
    return {"url": url, "default": False} if url else default_spec(run_dir, workers)


def shown(spec: dict) -> str:
    """The storage as printed and recorded in tune.json (a password in the URL is masked)."""
    if "journal" in spec:
        return f"journal file {spec['journal']}"
    try:
        from sqlalchemy.engine import make_url

        return make_url(spec["url"]).render_as_string(hide_password=True)
    except Exception:
        return spec["url"].split("@")[-1] if "@" in spec["url"] else spec["url"]


def local_file(spec: dict) -> Optional[Path]:
    """The file a journal or SQLite storage lives in (None for a server)."""
    if "journal" in spec:
        return Path(spec["journal"]).resolve()
    if spec["url"].startswith("sqlite:///"):
        return Path(spec["url"].removeprefix("sqlite:///")).resolve()
    return None


def open_storage(spec: dict):
    """The Optuna storage of a spec; an unusable one raises ConfigError naming it, within about CONNECT_TIMEOUT_S."""
    import optuna

    if "journal" in spec:
        from optuna.storages import JournalStorage

        try:
            from optuna.storages.journal import JournalFileBackend
        except ImportError:  # Optuna < 4
            from optuna.storages import JournalFileStorage as JournalFileBackend
        path = Path(spec["journal"])
        if not path.parent.is_dir():
            raise ConfigError(f"study storage {shown(spec)}: the folder {path.parent} does not exist")
        return JournalStorage(JournalFileBackend(str(path)))
    url = spec["url"]
    try:
        from sqlalchemy.engine import make_url

        backend = make_url(url).get_backend_name()
    except Exception as exc:
        raise ConfigError(f"--storage {url!r} is not a database URL ({exc}); use e.g. sqlite:///runs/study.db or "
                          "postgresql://user:password@host/db") from None
    connect = {"timeout": 30} if backend == "sqlite" else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect})
    except ImportError as exc:  # Optuna's own ImportError; the missing module is its cause
        raise ConfigError(f"study storage {shown(spec)}: the {backend} database driver is not installed "
                          f"({exc.__cause__ or exc}); install the one the URL names (postgresql://: pip install "
                          "'psycopg[binary]'; postgresql+psycopg2://: pip install psycopg2-binary; mysql+pymysql://: "
                          "pip install pymysql)") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = ("does its folder exist?" if backend == "sqlite" else
                "is the server running and reachable, and are the user, password and database right?")
        raise ConfigError(f"study storage {shown(spec)} cannot be opened: {first[:300]}; {hint}") from None
