"""Hyper-parameter search with Optuna (``forgeml tune``; docs/tune.md): the space (space.py), where the study lives
(storage.py), one trial (objective.py), the search loop (search.py) and its worker processes (workers.py), the study
and the final run (study.py), tune.json, plots and the report section (report.py). Optuna is the ``tune`` extra; it is
imported only when a search runs."""
from forgeml.tune.study import TuneResult, tune  # noqa: F401
