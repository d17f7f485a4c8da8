#!/usr/bin/env bash
# The clean-clone CI run under load: clone the repository fresh (nothing cached, no
# .rafael store, no Hypothesis database), start one CPU-bound busy loop per core, and run
# the whole suite RUNS times in a row (default 3). Any failing run fails the script.
#
#   benchmarks/stress_ci.sh [REPO] [-- PYTEST ARGS...]
#
# REPO defaults to the repository this script is in; its checked-out commit is tested.
# RUNS (env) sets the number of runs, HOGS (env) the number of busy loops (default: the
# number of cores). Each run's wall time is printed; the load is stopped on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$here"
if [[ $# -gt 0 && "$1" != "--" ]]; then
    repo="$1"
    shift
fi
[[ "${1:-}" == "--" ]] && shift
runs="${RUNS:-3}"
hogs="${HOGS:-$(nproc)}"
python="${PYTHON:-python}"
rev="$(git -C "$repo" rev-parse HEAD)"

work="$(mktemp -d)"
hog_pids=()
cleanup() {
    for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

git clone --quiet --no-checkout "$repo" "$work/clone"
git -C "$work/clone" checkout --quiet "$rev"
echo "stress_ci: commit $rev, $runs runs, $hogs busy loop(s) on $(nproc) core(s)"

for _ in $(seq "$hogs"); do
    "$python" -c 'while True: pass' &
    hog_pids+=("$!")
done

cd "$work/clone"
for n in $(seq "$runs"); do
    start="$(date +%s)"
    # The clone's package, not an installed one; no cache carried between runs.
    if ! PYTHONPATH="$work/clone" "$python" -m pytest -q -p no:cacheprovider "$@"; then
        echo "stress_ci: run $n of $runs FAILED after $(( $(date +%s) - start )) s"
        exit 1
    fi
    echo "stress_ci: run $n of $runs passed in $(( $(date +%s) - start )) s"
    # Back to the fresh checkout: generated files go, shipped ones (reports/README.md)
    # stay. (Removing reports/ here made every later run fail its reports-folder tests.)
    git clean -fdxq
    git checkout --quiet -- .
done
echo "stress_ci: all $runs runs passed under load"
