#!/usr/bin/env bash
# ci.sh - what the Makefile runs. One process per command, so one summary per run:
#
#   tools/ci.sh test          lint + the fiber crate's tests under valgrind + test-host + a selection of it under valgrind + docs + test-chroots + dist (the whole suite; `make test`, .ci/run)
#   tools/ci.sh lint          cargo fmt/clippy, cargo test -p anywait-fiber, ruff check/format, mypy
#   tools/ci.sh docs          the API reference (docs/api) with Sphinx, warnings as errors
#   tools/ci.sh test-host     pytest on the pyenv interpreters (PY=3.12.1 picks one)
#   tools/ci.sh test-chroots  pytest on the Debian interpreters in chroots (PY=python3.15d or PY=trixie)
#   tools/ci.sh dist          sdist + a wheel per CPython version and architecture, checked and smoke-tested (tools/dist.sh)
#   tools/ci.sh demo          release build into a venv, run examples/demo.py
#   tools/ci.sh bench         release build into a venv with the `bench` extra, run $BENCH $BENCH_ARGS
#   tools/ci.sh bench-chroots the same on Debian's interpreters in their chroots (PY=python3.15)
#   tools/ci.sh fuzz          the differential fuzzer's long run (tests/fuzz): $FUZZ_N programs per backend
#   tools/ci.sh valgrind      memcheck over the fiber crate's tests and the fiber and portal suites (tools/valgrind.sh)
#   tools/ci.sh plot          bench_portal.py (full run + RSS at several task counts), then
#                             benches/plot.py: the PNGs and their data in docs/performance/
#   tools/ci.sh clean         delete $ANYWAIT_CACHE and the repository's build output
#   tools/ci.sh distclean     clean, and delete the chroots too (the next test run rebuilds them)
#
# A failing step never stops the run: every target is reported and the closing line is
# "N passed, N failed, N skipped"; the exit status is non-zero if anything failed.
# See tools/interpreters.sh and tools/common.sh for the knobs (PY, PROFILE, ANYWAIT_CACHE, ...).
set -uo pipefail
# shellcheck source=tools/interpreters.sh
source "$(dirname "${BASH_SOURCE[0]}")/interpreters.sh"
# shellcheck source=tools/dist.sh
source "$(dirname "${BASH_SOURCE[0]}")/dist.sh"
# shellcheck source=tools/valgrind.sh
source "$(dirname "${BASH_SOURCE[0]}")/valgrind.sh"

LINT_PY=${LINT_PY:-3.11.7}      # the venv (test extra) that runs ruff and mypy and feeds clippy's PYO3_PYTHON
BENCH=${BENCH:-benches/bench_fiber.py benches/bench_portal.py benches/bench_sync_first.py benches/bench_nested_run.py benches/bench_generators.py benches/bench_files.py benches/bench_scale.py}  # one or more, space-separated
BENCH_ARGS=${BENCH_ARGS:-}      # e.g. --quick
FUZZ_N=${FUZZ_N:-10000}         # programs per backend for `make fuzz` (N=...)
FUZZ_ARGS=${FUZZ_ARGS:-}        # e.g. --seed 42 --backend trio
export RUFF_CACHE_DIR=$CACHE/ruff-cache MYPY_CACHE_DIR=$CACHE/mypy-cache

lint() {
  local venv="" py rc
  log "lint"
  if py=$(host_python "$LINT_PY"); then
    venv=$CACHE/venv-$LINT_PY
    timed "venv lint ($LINT_PY)" ensure_venv "$venv" "$py" test || venv=""
  else
    echo "interpreter $LINT_PY (LINT_PY) not found"
  fi
  timed "cargo fmt --check" in_dir "$ROOT" cargo fmt --all --check
  record "lint:rustfmt" $?
  if [ -n "$venv" ]; then
    timed "cargo clippy ($LINT_PY)" in_dir "$ROOT" env PYO3_PYTHON="$venv/bin/python" CARGO_TARGET_DIR="$CACHE/target/lint" \
      cargo clippy --workspace --all-targets -- -D warnings
    record "lint:clippy" $?
  else
    record "lint:clippy" 1 "no venv for PYO3_PYTHON"
  fi
  # The other host interpreters: per-version cfgs leave code (and imports) that only one
  # version compiles, so an unused one shows only when built for another version.
  local v
  for v in $HOST_PYTHONS; do
    [ "$v" = "$LINT_PY" ] && continue
    if ! py=$(host_python "$v"); then record "lint:clippy-$v" 1 "interpreter $v not found"; continue; fi
    timed "cargo clippy ($v)" in_dir "$ROOT" env PYO3_PYTHON="$py" CARGO_TARGET_DIR="$CACHE/target/lint-$v" \
      cargo clippy --workspace --all-targets -- -D warnings
    record "lint:clippy-$v" $?
  done
  timed "cargo test -p anywait-fiber" in_dir "$ROOT" env CARGO_TARGET_DIR="$CACHE/target/lint" \
    cargo test -p anywait-fiber
  record "cargo-test:anywait-fiber" $?
  local step name
  for step in "ruff-check:ruff check" "ruff-format:ruff format --check" "mypy:mypy"; do
    name=lint:${step%%:*} step=${step#*:}
    if [ -z "$venv" ]; then record "$name" 1 "no venv"; continue; fi
    # shellcheck disable=SC2086
    timed "$step" in_dir "$ROOT" "$venv/bin/"$step
    record "$name" $?
  done
}

# Peers whose own published test suites run against anywait (tests/test_compat_*.py): their
# wheels, fetched from PyPI with pip, never vendored. The tests read ANYWAIT_PEER_WHEELS
# (the chroot runs get a copy); ANYWAIT_REQUIRE_PEERS makes a missing wheel a failure.
PEER_WHEELS=${PEER_WHEELS:-"greenback==1.3.0"}
fetch_peers() {
  local py dir=$CACHE/peers req
  py=$(host_python "$LINT_PY") || { echo "interpreter $LINT_PY (LINT_PY) not found"; return 1; }
  mkdir -p "$dir"
  for req in $PEER_WHEELS; do
    if compgen -G "$dir/${req%%==*}-${req##*==}-*.whl" >/dev/null; then continue; fi
    quiet "$LOGS/peers.log" "$py" -m pip download --no-deps --only-binary :all: -d "$dir" "$req" || return 1
  done
  export ANYWAIT_PEER_WHEELS=$dir ANYWAIT_REQUIRE_PEERS=1
}

# The API reference: Sphinx builds docs/api from the docstrings of a build of the tree
# (the host test build's cargo target dir, so after test-host it is only repackaged);
# warnings are errors, references are checked (-n), and docs/api/conf.py fails the
# build when a public name has no entry. HTML in $CACHE/docs/html.
docs() {
  local py venv
  log "docs"
  py=$(host_python "$LINT_PY") || { record docs 1 "interpreter $LINT_PY (LINT_PY) not found"; return; }
  venv=$CACHE/venv-docs-$LINT_PY
  timed "venv docs ($LINT_PY)" ensure_venv "$venv" "$py" docs || { record docs 1 "venv set-up failed"; return; }
  timed "build docs ($PROFILE)" install_wheel "$venv" "host-$LINT_PY" "$PROFILE" || { record docs 1 "build failed"; return; }
  rm -rf "$CACHE/docs"
  timed "sphinx docs/api" in_dir "$ROOT" "$venv/bin/python" -m sphinx -W -n --keep-going -q \
    -d "$CACHE/docs/doctrees" -b html docs/api "$CACHE/docs/html"
  local rc=$?
  record docs $rc
  [ $rc -ne 0 ] || note "API reference: $CACHE/docs/html/index.html"
}

release_venv() { # extra... -> sets VENV: a venv of the host's python3 (or PY) with a release build
  local py tag extra=("$@") name
  if [ -n "${PY:-}" ]; then py=$(host_python "$PY") || { echo "interpreter $PY not found"; return 1; }
  else py=$(python3 -c 'import sys; print(sys.executable)') || { echo "no python3 on PATH"; return 1; }; fi
  tag=$(py_tag "$py") || return 1
  name=${extra[0]:-demo}
  VENV=$CACHE/venv-$name-$tag
  timed "venv $name ($tag)" ensure_venv "$VENV" "$py" "${extra[@]}" || return 1
  timed "build release ($tag)" install_wheel "$VENV" "release-$tag" release
}

demo() {
  log "demo"
  if [ ! -f "$ROOT/examples/demo.py" ]; then
    record demo 1 "examples/demo.py does not exist (yet): nothing to run"
    return
  fi
  release_venv || { record demo 1 "install failed"; return; }
  timed "python examples/demo.py" in_dir "$ROOT" "$VENV/bin/python" examples/demo.py
  record demo $?
}

bench() {
  log "bench"
  local b rc
  for b in $BENCH; do [ -f "$ROOT/$b" ] || { record bench 1 "$b does not exist"; return; }; done
  release_venv bench || { record bench 1 "install failed"; return; }
  for b in $BENCH; do
    # shellcheck disable=SC2086
    timed "python $b $BENCH_ARGS" in_dir "$ROOT" "$VENV/bin/python" "$b" $BENCH_ARGS
    rc=$?  # before the record line: its $(basename) would reset $?
    record "bench:$(basename "$b" .py)" "$rc"
  done
}

# The differential fuzzer's long run, on the host's python3 (or PY) with a release build
# and the test extra (its backends: asyncio C and pure-Python tasks, uvloop, Trio). It
# prints the seed and a reduced program of any divergence, and fails on one.
fuzz() {
  log "fuzz"
  release_venv test || { record fuzz 1 "install failed"; return; }
  # shellcheck disable=SC2086
  timed "python -m tests.fuzz -n $FUZZ_N $FUZZ_ARGS" in_dir "$ROOT" "$VENV/bin/python" -X dev -m tests.fuzz -n "$FUZZ_N" $FUZZ_ARGS
  record fuzz $?
}

# The benchmarks on Debian's interpreters (PY=python3.15 picks one): a release build staged
# in its chroot, each $BENCH run there with the peers the chroot has (Debian's greenlet).
bench_chroots() {
  log "bench-chroots"
  local t s i b rc PROFILE=release
  lock_chroots
  setup_chroots
  for t in $(selected_targets); do
    IFS=: read -r s i _ <<<"$t"
    case " $BROKEN_SUITES " in *" $s "*) record "bench:$s:$i" 1 "the $s chroot could not be set up"; continue ;; esac
    build_target "$s" "$i" || { record "bench:$s:$i" 1 "build failed"; continue; }
    for b in $BENCH; do
      timed "$s:$i python $b $BENCH_ARGS" in_tree "$s" "$i" "exec $i $b $BENCH_ARGS"
      rc=$?
      record "bench:$s:$i:$(basename "$b" .py)" "$rc"
    done
  done
  unlock_chroots
}

# The pictures of docs/performance.md: one full bench_portal.py run, RSS runs at several
# task counts, then benches/plot.py. The JSON the pictures come from is kept beside them.
PLOT_RSS_TASKS=${PLOT_RSS_TASKS:-"1000 3000 10000 30000"}
plot() {
  log "plot"
  local out=$ROOT/docs/performance data=$CACHE/plot n rc rss=()
  release_venv bench || { record plot 1 "install failed"; return; }
  rm -rf "$data" && mkdir -p "$data" "$out"
  timed "bench_portal.py (full)" in_dir "$ROOT" "$VENV/bin/python" benches/bench_portal.py \
    --json "$data/portal.json"
  rc=$?
  for n in $PLOT_RSS_TASKS; do
    [ $rc -eq 0 ] || break
    timed "bench_portal.py (RSS, $n tasks)" in_dir "$ROOT" "$VENV/bin/python" benches/bench_portal.py \
      --filter RSS --rss-tasks "$n" --rss-rounds 3 --json "$data/rss-$n.json"
    rc=$?
    rss+=("$data/rss-$n.json")
  done
  if [ $rc -eq 0 ]; then
    timed "plot.py" in_dir "$ROOT" "$VENV/bin/python" benches/plot.py --portal "$data/portal.json" \
      --rss "${rss[@]}" --out "$out"
    rc=$?
  fi
  [ $rc -ne 0 ] || cp "$data"/*.json "$out"/
  record plot $rc
}

clean() { # only what these scripts make, whatever ANYWAIT_CACHE points at
  ( cd "$CACHE" && rm -rf logs target wheels ruff-cache mypy-cache venv-* .anywait-cache )
  ( cd "$ROOT" && cargo clean -q ) 2>/dev/null
  rm -f "$ROOT"/python/anywait/_anywait*.so
  echo "removed $CACHE, $ROOT/target and python/anywait/_anywait*.so"
}

lock_cache() { # one run at a time per cache (venvs, wheels and target dirs are shared)
  exec 8>"$CACHE/.lock"
  flock -n 8 || { echo "waiting for another run using $CACHE"; flock -w 3600 8 || exit 1; }
}

# The commands run from one function, called on the last line: bash reads a script as it
# runs it, so an edit to this file during a run would otherwise change what the rest of
# that run does; a function is read whole before it runs.
main() {
trap cleanup_mounts EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cmd=${1:-help}
case $cmd in
  test) lock_cache; lint; valgrind_quick; timed "fetch peers' wheels" fetch_peers; record peers $?; run_host; valgrind_selection; docs; run_chroots; dist ;;
  lint) lock_cache; lint ;;
  test-host) lock_cache; fetch_peers; run_host ;;
  test-chroots) lock_cache; fetch_peers; run_chroots ;;
  docs) lock_cache; docs ;;
  dist) lock_cache; dist ;;
  demo) lock_cache; demo ;;
  bench) lock_cache; bench ;;
  bench-chroots) lock_cache; bench_chroots ;;
  fuzz) lock_cache; fuzz ;;
  plot) lock_cache; plot ;;
  valgrind) lock_cache; valgrind_run ;;
  clean) lock_cache; clean; exit 0 ;;
  distclean) lock_cache; clean; bash "$ROOT/tools/interpreters.sh" clean; exit $? ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
[ "$cmd" = demo ] && [ "$FAIL" -eq 0 ] && [ "$SKIP" -eq 0 ] && exit 0   # keep the demo's output last
summary
}
main "$@"
