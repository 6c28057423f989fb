#!/usr/bin/env bash
# Mutation testing of forgeml's core modules with mutmut 3. Not part of `make test`: pytest ignores tests/mutation
# (addopts in pyproject.toml). What is mutated and which tests run are in [tool.mutmut] in pyproject.toml; the
# measured score and the surviving mutants are in docs/testing.md.
#
#   tests/mutation/run.sh                              # every module in only_mutate
#   tests/mutation/run.sh forgeml.tasks forgeml.data.split   # only the mutants of these modules (prefixes)
#   MAX_CHILDREN=1 tests/mutation/run.sh ...           # mutants tested in parallel (default 2)
#   SAMPLE=3 tests/mutation/run.sh forgeml.data.split  # every 3rd mutant of these modules, if unchecked (needs the
#                                                      # mutants from an earlier run: `mutmut run` generates them)
#
# mutmut works in mutants/ (gitignored) and remembers results there: a second run continues where the first
# stopped. Delete mutants/ after changing the source or the tests you want re-measured. Print the score again
# with `tests/mutation/score.py`, and look at a mutant with `.venv/bin/mutmut show NAME`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import mutmut" 2>/dev/null || "$PY" -m pip install -q "mutmut>=3.8,<4"

# one torch/OpenMP thread per mutant: MAX_CHILDREN mutants share the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
# processes a test starts (none in the default selection) import the mutated copy, not src/. The folder must exist
# before Python starts: a sys.path entry that is missing at start-up is remembered as empty (sys.path_importer_cache),
# and forgeml would then be imported unmutated from the editable install (no test recorded for any mutant).
mkdir -p mutants/src
export PYTHONPATH="$PWD/mutants/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg

patterns=()
if [[ -n "${SAMPLE:-}" ]]; then
  mapfile -t patterns < <("$PY" tests/mutation/score.py "$@" --sample "$SAMPLE")
  [[ ${#patterns[@]} -gt 0 ]] || { echo "nothing to sample: no unchecked mutants of $* in mutants/"; exit 1; }
  echo "sampled ${#patterns[@]} mutants (the unchecked ones of every ${SAMPLE}th of $*)"
else
  for module in "$@"; do patterns+=("$module.*"); done   # mutant names: forgeml.data.split.x_split_indices__mutmut_3
fi
"$PY" -m mutmut run --max-children "${MAX_CHILDREN:-2}" ${patterns[@]+"${patterns[@]}"} || status=$?
"$PY" tests/mutation/score.py "$@"
exit "${status:-0}"
