#!/usr/bin/env bash
# Create one virtual environment per peer drift tool under benchmarks/.venvs/<tool>.
#
# The peers need mutually incompatible versions of numpy/pandas/pyarrow, so each
# lives in its own venv. A peer that fails to install is reported and skipped;
# run_drift.py then records "not installed" for it instead of crashing.
#
# Usage: bash benchmarks/setup_peers.sh [tool ...]     (default: all peers)
#        PYTHON=python3.11 bash benchmarks/setup_peers.sh
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
python="${PYTHON:-python3}"

# Pinned versions that install and run on CPython 3.11 / linux x86_64. The extra pins
# work around breakage found while setting these up:
# * evidently 0.7.23 and nannyml 0.13.1 fail to import with pandas 3 (whylogs is kept
#   on pandas 2 too, so every pandas-based peer reads the same pandas frames);
# * nannyml imports statsmodels without declaring it;
# * whylogs' drift scores live in whylogs.viz, which needs the [viz] extra (IPython);
# * alibi-detect 0.13.0 pins numpy<2, and pyarrow>=21 requires numpy>=2.
# * whylogs[spark] pins pyarrow<13 (PySpark 3.5), which needs numpy<2: a venv of its own
#   (benchmarks/spark.py), so the whylogs venv keeps the pyarrow of the other benchmarks.
# The scipy loop and watchkeeper itself run in the interpreter that runs run_drift.py.
declare -A SPECS=(
  [evidently]="evidently==0.7.23 pandas<3 pyarrow"
  [nannyml]="nannyml==0.13.1 statsmodels pandas<3 pyarrow"
  [whylogs]="whylogs[viz]==1.6.4 pandas<3 pyarrow"
  [whylogs-spark]="whylogs[spark]==1.6.4 pandas<3 numpy<2"
  [alibi-detect]="alibi-detect==0.13.0 pandas<3 pyarrow<21"
)

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
  tools=(evidently nannyml whylogs alibi-detect)
fi

failed=()
for tool in "${tools[@]}"; do
  spec="${SPECS[$tool]:-}"
  if [ -z "$spec" ]; then
    echo "unknown peer: $tool (known: ${!SPECS[*]})" >&2
    failed+=("$tool")
    continue
  fi
  dir="$venvs/$tool"
  echo "==> $tool: $spec"
  if [ ! -x "$dir/bin/python" ]; then
    "$python" -m venv "$dir" || { failed+=("$tool"); continue; }
  fi
  read -ra pkgs <<< "$spec"  # no globbing: "whylogs[viz]" stays literal
  if "$dir/bin/python" -m pip install --quiet --upgrade pip \
     && "$dir/bin/python" -m pip install --quiet "${pkgs[@]}"; then
    "$dir/bin/python" -m pip freeze > "$dir/freeze.txt"
    echo "    ok"
  else
    echo "    FAILED to install $tool" >&2
    failed+=("$tool")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "peers that failed: ${failed[*]} (the benchmark records them as errors)" >&2
fi
exit 0
