# shellcheck shell=bash
# common.sh - shared helpers for tools/ci.sh and tools/interpreters.sh (sourced, not run).
#
# Results: every target ends as PASS, FAIL or SKIP (record/skip); `summary` prints the timing
# table and the closing line "N passed, N failed, N skipped", and returns non-zero if any failed.
# Paths: ROOT is the repository, CACHE holds venvs, cargo target dirs, wheels and logs
# (ANYWAIT_CACHE, default /var/tmp/anywait-cache; safe to delete, the next run rebuilds it).

[ -n "${ANYWAIT_COMMON_SOURCED:-}" ] && return 0
ANYWAIT_COMMON_SOURCED=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ANYWAIT_CACHE:-/var/tmp/anywait-cache}
LOGS=$CACHE/logs
PROFILE=${PROFILE:-dev}                 # cargo profile of test builds: dev (default) or release
TEST_TIMEOUT=${TEST_TIMEOUT:-900}       # seconds, per pytest run (one interpreter)
# Hard stop for the whole run: once this many seconds have passed, the remaining steps are
# failed without running, so a hang still ends with a summary inside CI's 90 minutes.
BUDGET=${ANYWAIT_BUDGET:-4800}
mkdir -p "$LOGS"

# Nothing from the caller's shell may steer the builds: each step sets what it needs.
unset PYO3_PYTHON PYO3_CROSS PYO3_CROSS_LIB_DIR PYO3_CROSS_PYTHON_VERSION PYO3_CROSS_PYTHON_IMPLEMENTATION \
      PYO3_BUILD_EXTENSION_MODULE PYO3_CONFIG_FILE PYO3_NO_PYTHON _PYTHON_SYSCONFIGDATA_NAME \
      ANYWAIT_PYTHON_INCLUDE VIRTUAL_ENV CONDA_PREFIX PYTHONPATH PYTHONHOME PYTHONSTARTUP CARGO_TARGET_DIR
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive

PASS=0 FAIL=0 SKIP=0
FAILED=() SKIPPED=() TIMES=()
T_START=$EPOCHREALTIME

log() { printf '\n===== %s\n' "$*"; }
note() { printf '  %s\n' "$*"; }
elapsed() { awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%d", b-a}'; }
remaining() { echo $(( BUDGET - $(elapsed) )); }

timed() { # name cmd... : runs cmd, logs "name  seconds  rc" (also kept for the final table)
  local name=$1; shift
  local t0=$EPOCHREALTIME rc line
  printf -- '--- %s\n' "$name"
  "$@"; rc=$?
  line=$(awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" -v r=$rc \
    'BEGIN{printf "%-52s %7.1f s  rc=%d", n, b-a, r}')
  TIMES+=("$line")
  printf -- '--- %s\n' "$line"
  return $rc
}

record() { # target rc [why]
  if [ "$2" -eq 0 ]; then
    PASS=$((PASS + 1)); printf 'PASS %s\n' "$1"
  else
    FAIL=$((FAIL + 1)); FAILED+=("$1"); printf 'FAIL %s%s\n' "$1" "${3:+: $3}"
  fi
}
skip() { # target why  (loud on purpose: a skipped interpreter is easy to miss)
  SKIP=$((SKIP + 1)); SKIPPED+=("$1")
  printf '\n!!!!! SKIP %s: %s\n\n' "$1" "$2"
}
over_budget() { # target -> 0 (and records a failure) if the run's time budget is spent
  [ "$(remaining)" -gt 60 ] && return 1
  record "$1" 1 "not run: the run's time budget (ANYWAIT_BUDGET=${BUDGET}s) is spent"
}

in_dir() { ( cd "$1" || exit; shift; "$@" ); } # dir cmd...

quiet() { # logfile cmd... : output to logfile; on failure show its tail
  local logf=$1; shift
  "$@" >"$logf" 2>&1 && return 0
  local rc=$?
  echo "  (failed, rc=$rc; last lines of $logf:)"; tail -n 40 "$logf" | sed 's/^/  | /'
  return $rc
}

summary() { # prints the timing table and the closing line; returns 1 if anything failed
  echo
  echo "===== timings"
  local t; for t in "${TIMES[@]}"; do echo "  $t"; done
  awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "  %-52s %7.1f s\n", "total", b-a}'
  [ ${#SKIPPED[@]} -eq 0 ] || echo "skipped: ${SKIPPED[*]}"
  [ ${#FAILED[@]} -eq 0 ] || echo "failed: ${FAILED[*]}"
  echo "$PASS passed, $FAIL failed, $SKIP skipped"
  [ "$FAIL" -eq 0 ]
}

# ---- host interpreters and venvs -------------------------------------------------------

host_python() { # version (e.g. 3.12.1) or a path -> prints the interpreter's path
  local v=$1 p
  case $v in */*) [ -x "$v" ] && { echo "$v"; return 0; }; return 1 ;; esac
  p=${PYENV_ROOT:-$HOME/.pyenv}/versions/$v/bin/python
  [ -x "$p" ] && { echo "$p"; return 0; }
  if command -v pyenv >/dev/null; then
    p=$(pyenv prefix "$v" 2>/dev/null)/bin/python && [ -x "$p" ] && { echo "$p"; return 0; }
  fi
  return 1
}

py_tag() { # interpreter -> a name for its venv/target dir, e.g. 3.12.1
  "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3] + ("d" if hasattr(sys, "gettotalrefcount") else ""))'
}

pyproject_reqs() { # extra... -> requirement lines: the build backend, then each extra's deps
  "${REQS_PY:-python3}" - "$ROOT/pyproject.toml" "$@" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    meta = tomllib.load(f)
reqs = list(meta["build-system"]["requires"])
extras = meta.get("project", {}).get("optional-dependencies", {})
for name in sys.argv[2:]:
    if name not in extras:
        sys.exit(f"pyproject.toml has no extra {name!r} (has: {', '.join(extras)})")
    reqs += extras[name]
print("\n".join(reqs))
EOF
}

_make_venv() { # python dir req... (output goes to the caller's log)
  "$1" -m venv "$2" && "$2/bin/python" -m pip install "${@:3}"
}
ensure_venv() { # dir python extra... : venv with the build backend (maturin) and the extras
  local dir=$1 py=$2; shift 2
  local want reqs=()
  mapfile -t reqs < <(REQS_PY=$py pyproject_reqs "$@") && [ ${#reqs[@]} -gt 0 ] || return 1
  want="$("$py" -c 'import sys; print(sys.executable, sys.version)')
$(printf '%s\n' "${reqs[@]}")"
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.anywait-reqs" ] && [ "$(cat "$dir/.anywait-reqs")" = "$want" ]; then
    note "venv $dir is up to date"
    return 0
  fi
  rm -rf "$dir"
  quiet "$LOGS/venv-$(basename "$dir").log" _make_venv "$py" "$dir" "${reqs[@]}" || return 1
  printf '%s\n' "$want" >"$dir/.anywait-reqs"
  note "venv $dir: ${reqs[*]}"
}

cargo_profile_args() { # profile -> cargo/maturin flags
  case $1 in release) echo --release ;; *) echo "--profile $1" ;; esac
}
profile_dir() { case $1 in dev | test) echo debug ;; *) echo "$1" ;; esac; }

install_wheel() { # venv name profile : maturin builds a wheel for the venv's python, pip installs it
  local venv=$1 name=$2 profile=$3 out=$CACHE/wheels/$2
  rm -rf "$out"
  # shellcheck disable=SC2046  # the profile flags are meant to split
  ( cd "$ROOT" && CARGO_TARGET_DIR=$CACHE/target/$name VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH \
      maturin build $(cargo_profile_args "$profile") --compatibility linux -i "$venv/bin/python" -o "$out" ) || return 1
  quiet "$LOGS/pip-install-$name.log" "$venv/bin/pip" install --no-deps --force-reinstall "$out"/*.whl
}
