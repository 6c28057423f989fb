#!/usr/bin/env bash
# Does a test file kill the given mutants? For each NAME, runs TESTS (default tests/test_mutation_gaps.py) against the
# mutants/ copy with that mutant switched on, and prints killed/survived. Needs a mutants/ folder from run.sh.
#
#   tests/mutation/check_kills.sh 'forgeml.tasks.regression.xǁRegressionǁdecode__mutmut_2' ...
#   TESTS=tests/test_tables.py tests/mutation/check_kills.sh NAME
#   TESTS=tests/test_anomaly.py K='centrality or label' tests/mutation/check_kills.sh NAME   # only these tests (-k)
#   TESTS=tests/test_anomaly.py::test_images_with_the_autoencoder tests/mutation/check_kills.sh NAME   # a node id
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$PWD/.venv/bin/python}
TESTS=${TESTS:-tests/test_mutation_gaps.py}
cp "${TESTS%%::*}" "mutants/${TESTS%%::*}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH="$PWD/mutants/src" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
for name in "$@"; do
  if (cd mutants && MUTANT_UNDER_TEST="$name" "$PY" -m pytest -x -q -p no:cacheprovider -W ignore "$TESTS" ${K:+-k "$K"} >/dev/null 2>&1); then
    echo "survived  $name"
  else
    echo "killed    $name"
  fi
done
