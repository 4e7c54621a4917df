# valgrind.sh - `make valgrind` (sourced by tools/ci.sh): memcheck over the fiber crate's unit
# tests and over the fiber and portal pytest suites.
#
#   * valgrind:anywait-fiber  `cargo test -p anywait-fiber --lib` with valgrind as cargo's test
#     runner (ANYWAIT_EXPECT_VALGRIND=1: the crate's valgrind tests then check that the client
#     requests reach valgrind);
#   * valgrind:pytest         pytest on $VALGRIND_TESTS under memcheck, on the host interpreter
#     PY (default 3.12.1; a pyenv release build: the host has no debug CPython) with
#     PYTHONMALLOC=malloc, so memcheck sees every object's malloc and free. A release build
#     of anywait (debug line tables kept: profile.release has debug = 1) is pip-installed
#     into a venv of the `test` extra, or into VALGRIND_VENV as it is.
#     Children are traced (--trace-children=yes): the crash, thread, shutdown and fork
#     scenarios run in child interpreters and are the paths most worth checking. Each
#     process writes its own log, $CACHE/valgrind/<tag>/vg.<pid>.log;
#   * valgrind:selection      what `make test` runs of the pytest part (valgrind_selection):
#     $VALGRIND_CI_TESTS on the build that host:3.12.1 has just tested (its venv, the test
#     profile), then the report below; the whole run is `make valgrind`;
#   * valgrind:memcheck       tools/valgrind_report.py over those logs: the ERROR SUMMARY and
#     LEAK SUMMARY of pytest itself, then every error of every process (fails on any), and
#     every definite leak that it attributes to anywait (fails on any; the interpreter's own
#     leaks at exit are counted, not failed: see the report's docstring).
#     Suppressions: tools/valgrind-python.supp.
#
# PY=python3.13d (or another chroot interpreter, tools/interpreters.sh) runs the pytest part in
# its chroot instead: valgrind is added to that chroot's packages, the extension is built on the
# host as for `make test-chroots`, and the logs land in the chroot's staged tree.
#
# Knobs: PY, VALGRIND_TESTS, VALGRIND_VENV, VALGRIND_TIMEOUT (seconds for the pytest run),
# VALGRIND_OPTS (appended to valgrind's options, e.g. --track-origins=yes), VALGRIND_CI_TESTS.

VALGRIND_TESTS=${VALGRIND_TESTS:-"tests/test_fiber_*.py tests/test_portal_*.py -m 'not scale'"}
VALGRIND_TIMEOUT=${VALGRIND_TIMEOUT:-5400}
VALGRIND_VENV=${VALGRIND_VENV:-}
VALGRIND_OPTS=${VALGRIND_OPTS:-}
# The selection `make test` runs (about 3 minutes here): fiber switches, the frame chain and
# GC view of blocked steps, portal finalizers (child interpreters, traced), await_ itself.
VALGRIND_CI_TESTS=${VALGRIND_CI_TESTS:-"tests/test_fiber_switch.py tests/test_portal_frames.py tests/test_portal_lifetime.py tests/test_portal_await.py -m 'not scale'"}

valgrind_options() { # log-dir suppressions-file -> memcheck's options, one word each
  # --errors-for-leak-kinds=none: leaks are judged by valgrind_report.py, not the exit code.
  # --num-callers=40: deep enough to tell anywait's allocations from Python code's.
  # --error-exitcode: a child interpreter with errors fails its scenario test too.
  # --trace-children-skip: helpers that are not Python (ctypes.util runs `ldconfig -p`, a
  # static binary that memcheck cannot follow: thousands of false reports).
  echo "--tool=memcheck --trace-children=yes --trace-children-skip=*/ldconfig,*/ldconfig.real,*/uname,*/gcc,*/cc,*/ld,*/objdump \
--log-file=$1/vg.%p.log --suppressions=$2 \
--error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
--num-callers=40 $VALGRIND_OPTS"
}

valgrind_verdict() { # rc
  case $1 in 99) echo "memcheck found errors in pytest's own process (see the report)" ;;
    *) pytest_verdict "$1" VALGRIND_TIMEOUT ;; esac
}

ensure_valgrind() {
  command -v valgrind >/dev/null && return 0
  [ "$(id -u)" -eq 0 ] || { echo "valgrind is not installed (apt-get install valgrind)"; return 1; }
  timed "apt-get install valgrind (host)" quiet "$LOGS/apt-valgrind.log" \
    sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind"
}

valgrind_fiber_crate() {
  local triple runner
  triple=$(rustc -vV | sed -n 's/^host: //p')
  runner="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_RUNNER"
  timed "cargo test -p anywait-fiber under valgrind" in_dir "$ROOT" env ANYWAIT_EXPECT_VALGRIND=1 \
    CARGO_TARGET_DIR="$CACHE/target/valgrind-fiber" \
    "$runner=nice -n 10 valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite" \
    cargo test -q -p anywait-fiber --lib
  record "valgrind:anywait-fiber" $?
}

valgrind_quick() { # what `make test` runs of this: the fiber crate's tests under memcheck (seconds)
  log "valgrind (fiber crate)"
  ensure_valgrind || { record "valgrind:anywait-fiber" 1 "no valgrind"; return; }
  valgrind_fiber_crate
}

valgrind_host() { # interpreter [installed: the venv has the build to check already]
  local py=$1 installed=${2:-} tag venv logs rc tests=()
  tag=$(py_tag "$py") || { record "valgrind:pytest" 1 "cannot run $py"; return 1; }
  if [ -n "$VALGRIND_VENV" ]; then
    venv=$VALGRIND_VENV
  else
    venv=$CACHE/venv-valgrind-$tag
    timed "venv valgrind ($tag)" ensure_venv "$venv" "$py" test || { record "valgrind:pytest" 1 "venv set-up failed"; return 1; }
  fi
  if [ -z "$installed" ]; then
    timed "build release ($tag)" install_wheel "$venv" "valgrind-$tag" release || { record "valgrind:pytest" 1 "build failed"; return 1; }
  fi
  ( cd / && "$venv/bin/python" -c 'import anywait._anywait as m; print("  testing", m.__file__)' ) || true
  logs=$CACHE/valgrind/$tag
  rm -rf "$logs" && mkdir -p "$logs"
  mapfile -t tests < <(cd "$ROOT" && eval "printf '%s\n' $VALGRIND_TESTS")  # globs and quotes, as a shell would
  # shellcheck disable=SC2046,SC2086  # the options are meant to split
  timed "pytest under valgrind ($tag)" in_dir "$ROOT" env PYTHONMALLOC=malloc \
    timeout --foreground -k 30 "$VALGRIND_TIMEOUT" nice -n 10 \
    valgrind $(valgrind_options "$logs" "$ROOT/tools/valgrind-python.supp") \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q "${tests[@]}" $PYTEST_ARGS
  rc=$?
  record "valgrind:pytest" $rc "$(valgrind_verdict $rc)"
  VALGRIND_LOGS=$logs
}

valgrind_chroot() { # suite interpreter (untested: see the note at the top)
  local s=$1 i=$2 root run rc TEST_TIMEOUT=$VALGRIND_TIMEOUT PROFILE=release
  root=$(root_of "$s") run=$(root_of "$s")/opt/anywait/$i
  lock_chroots
  CHROOT_PKGS="$CHROOT_PKGS valgrind" setup_chroots
  if suite_broken "valgrind:pytest" "$s"; then unlock_chroots; return 1; fi
  build_target "$s" "$i" || { record "valgrind:pytest" 1 "build failed"; unlock_chroots; return 1; }
  cp "$ROOT/tools/valgrind-python.supp" "$run/" && mkdir -p "$run/vg-logs" || { unlock_chroots; return 1; }
  timed "pytest under valgrind ($s:$i)" in_tree "$s" "$i" "PYTHONMALLOC=malloc exec nice -n 10 valgrind \
$(valgrind_options /opt/anywait/"$i"/vg-logs /opt/anywait/"$i"/valgrind-python.supp) \
$i -m pytest -p no:cacheprovider -q $VALGRIND_TESTS $PYTEST_ARGS"
  rc=$?
  record "valgrind:pytest" $rc "$(valgrind_verdict $rc)"
  unlock_chroots
  VALGRIND_LOGS=$run/vg-logs
}

valgrind_selection() { # after run_host: $VALGRIND_CI_TESTS under memcheck on host:3.12.1's build
  local py venv=$CACHE/venv-3.12.1
  log "valgrind (a selection of the pytest suites)"
  over_budget "valgrind:selection" && return
  command -v valgrind >/dev/null || { record "valgrind:selection" 1 "no valgrind"; return; }
  py=$(host_python 3.12.1) && [ -x "$venv/bin/python" ] || { record "valgrind:selection" 1 "no host:3.12.1 venv to check"; return; }
  VALGRIND_LOGS=""
  VALGRIND_VENV=$venv VALGRIND_TESTS=$VALGRIND_CI_TESTS VALGRIND_TIMEOUT=1200 valgrind_host "$py" installed
  [ -n "$VALGRIND_LOGS" ] || return
  timed "valgrind_report.py" python3 "$ROOT/tools/valgrind_report.py" "$VALGRIND_LOGS"
  record "valgrind:selection" $? "memory errors, or leaks attributed to anywait (see above)"
}

valgrind_run() {
  local py t s i
  log "valgrind"
  ensure_valgrind || { record valgrind 1 "no valgrind"; return; }
  valgrind_fiber_crate
  VALGRIND_LOGS=""
  if py=$(host_python "${PY:-3.12.1}"); then
    valgrind_host "$py"
  else
    t=$(selected_targets | head -n 1)
    [ -n "$t" ] || { record "valgrind:pytest" 1 "no host or chroot interpreter matches PY=$PY"; return; }
    IFS=: read -r s i _ <<<"$t"
    valgrind_chroot "$s" "$i"
  fi
  [ -n "$VALGRIND_LOGS" ] || return
  log "memcheck report ($VALGRIND_LOGS)"
  timed "valgrind_report.py" python3 "$ROOT/tools/valgrind_report.py" "$VALGRIND_LOGS"
  record "valgrind:memcheck" $? "memory errors, or leaks attributed to anywait (see above)"
}
