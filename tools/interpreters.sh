#!/usr/bin/env bash
# interpreters.sh - build anywait for, and run its pytest suite on, every interpreter it is
# tested on (DESIGN.md, "Interpreters to test on"). Sourced by tools/ci.sh (`make test`,
# `make test-host`, `make test-chroots`); can also run on its own:
#
#   tools/interpreters.sh [setup|host|chroots|all|clean|shell SUITE]
#
# host    : pyenv CPython 3.11.7, 3.12.1, 3.13.0 (HOST_PYTHONS). One venv each under
#           $ANYWAIT_CACHE (maturin + the `test` extra), a wheel built by maturin with the
#           cargo profile $PROFILE and pip-installed into it, then pytest from the repository
#           root (so pyproject's [tool.pytest.ini_options] applies) against the installed wheel.
# chroots : Debian interpreters, one chroot per suite under $ANYWAIT_CHROOTS
#           (default /var/tmp/anywait-interpreters; debootstrap + apt, needs root):
#             bookworm python3.11d, trixie python3.13 + python3.13d, testing python3.14 + python3.14d,
#             python3.15 + python3.15d.
#           The extension is compiled ON THE HOST with cargo against the chroot's interpreter
#           (PyO3 cross settings + ANYWAIT_PYTHON_INCLUDE for build.rs), copied into a mirror
#           of the repository inside the chroot (/opt/anywait/<interpreter>: pyproject.toml,
#           tests/, examples/, docs/, python/anywait/ with the .so named by the chroot's
#           EXT_SUFFIX) and tested there with Debian's pytest:
#             cd /opt/anywait/I && PYTHONPATH=python I -X dev -m pytest -p no:cacheprovider
#           Only /proc and a private /dev/pts are mounted inside a chroot, while apt or the tests run; what this run
#           mounted is unmounted again, on exit too (trap). If a suite in OPTIONAL_SUITES (testing) cannot be set up,
#           its targets are SKIPPED with a loud line; any other missing interpreter FAILS.
# arm64   : a suite named SUITE-arm64 (trixie-arm64: python3.13) is a Debian arm64 chroot run
#           under emulation (qemu-user-static, registered with binfmt_misc with the F flag,
#           so nothing of qemu is needed inside). The extension is CROSS-COMPILED for it in the
#           chroot of the same Debian suite for the host's architecture (its "builder": trixie),
#           with Debian's cargo, its aarch64 standard library and aarch64-linux-gnu-gcc, against
#           the arm64 interpreter's headers and sysconfigdata copied over (the host's rustup has
#           no aarch64 std; compiling under emulation took 11 minutes, this takes seconds).
#           build.rs runs its layout dump, linked statically, under the emulator. Only the
#           fiber and portal suites, less their scale tests, run there ($FOREIGN_TESTS) unless
#           FOREIGN_TESTS=tests (`make test-aarch64`): the whole suite under emulation.
#
# Knobs (environment): PY (only targets whose version, interpreter or suite equals it),
# PROFILE (dev|release), HOST_PYTHONS, CHROOT_TARGETS, CHROOT_PKGS, OPTIONAL_SUITES,
# FOREIGN_TESTS, FOREIGN_TEST_TIMEOUT, CROSS_PKGS, ANYWAIT_CHROOTS, ANYWAIT_CACHE, DEBIAN_MIRROR, TEST_TIMEOUT,
# PYTEST_ARGS (appended).

# shellcheck source=tools/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BASE=${ANYWAIT_CHROOTS:-/var/tmp/anywait-interpreters}
HOST_PYTHONS=${HOST_PYTHONS:-"3.11.7 3.12.1 3.13.0"}
# suite:interpreter:debian-packages(comma-separated); -venv where make dist smoke-tests a wheel
CHROOT_TARGETS=${CHROOT_TARGETS:-"bookworm:python3.11d:python3.11-dbg,python3.11-dev
  trixie:python3.13:python3.13,python3.13-dev trixie:python3.13d:python3.13-dbg,python3.13-dev
  testing:python3.14:python3.14,python3.14-dev,python3.14-venv testing:python3.14d:python3.14-dbg,python3.14-dev
  testing:python3.15:python3.15,python3.15-dev,python3.15-venv testing:python3.15d:python3.15-dbg,python3.15-dev
  trixie-arm64:python3.13:python3.13,python3.13-dev,python3.13-venv"}
# Into the builder chroot of each foreign suite (see arm64 above): the cross toolchain.
CROSS_PKGS=${CROSS_PKGS:-"cargo rustc libstd-rust-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross"}
# What runs in a foreign-architecture (emulated) chroot: the fiber and portal core without the
# scale tests (under emulation they took 7 of its 21 minutes), or `tests` for all; and its
# own per-run timeout (the core took 14 minutes there).
FOREIGN_TESTS=${FOREIGN_TESTS:-"tests/test_fiber_*.py tests/test_portal_*.py -m 'not scale'"}
FOREIGN_TEST_TIMEOUT=${FOREIGN_TEST_TIMEOUT:-2400}
# Into every chroot: Debian's pytest, and the test suite's optional loops and peers. trio and
# anyio are pure Python, so the debug interpreters get them too; uvloop and greenlet are built
# for the suite's default release interpreter only (the tests skip what does not import).
CHROOT_PKGS=${CHROOT_PKGS:-"python3-pytest python3-coverage python3-trio python3-anyio python3-uvloop python3-greenlet python3-pexpect"}
OPTIONAL_SUITES=${OPTIONAL_SUITES:-testing}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-}                                # empty: debootstrap's default
PYTEST_ARGS=${PYTEST_ARGS:-}
BROKEN_SUITES=""

selected() { # words... -> 0 if PY is unset or equals one of them
  [ -z "${PY:-}" ] && return 0
  local w; for w in "$@"; do [ "$w" = "$PY" ] && return 0; done
  return 1
}

pytest_verdict() { # rc [timeout-variable] -> a word on what pytest's exit status means
  case $1 in
    0) ;; 1) echo "tests failed" ;; 2) echo "interrupted" ;; 3) echo "pytest internal error" ;;
    4) echo "pytest usage error" ;; 5) echo "no tests were collected" ;;
    124) local var=${2:-TEST_TIMEOUT}; echo "timed out ($var=${!var}s, or the run's budget)" ;;
    13[0-9] | 1[4-9][0-9]) echo "the interpreter died of signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null || echo ?))" ;;
    *) echo "exit status $1" ;;
  esac
}

# ---- host (pyenv) ------------------------------------------------------------------------

host_target() { # version
  local v=$1 name="host:$1" py venv rc
  log "$name"
  over_budget "$name" && return
  if ! py=$(host_python "$v"); then
    record "$name" 1 "interpreter $v not found (looked in ${PYENV_ROOT:-$HOME/.pyenv}/versions and pyenv)"
    return
  fi
  venv=$CACHE/venv-$v
  timed "venv $name" ensure_venv "$venv" "$py" test || { record "$name" 1 "venv set-up failed"; return; }
  timed "build $name ($PROFILE)" install_wheel "$venv" "host-$v" "$PROFILE" || { record "$name" 1 "build failed"; return; }
  ( cd / && "$venv/bin/python" -c 'import anywait._anywait as m; print("  testing", m.__file__)' ) || true
  # shellcheck disable=SC2086
  timed "pytest $name" in_dir "$ROOT" timeout --foreground -k 30 "$(budget_timeout)" \
    "$venv/bin/python" -X dev -m pytest -p no:cacheprovider $PYTEST_ARGS; rc=$?
  record "$name" $rc "$(pytest_verdict $rc)"
}

budget_timeout() { # per-run timeout, never past the run's budget
  local r; r=$(remaining); [ "$r" -lt "$TEST_TIMEOUT" ] && echo $((r > 60 ? r - 30 : 30)) || echo "$TEST_TIMEOUT"
}

run_host() {
  local v any=0
  for v in $HOST_PYTHONS; do selected "$v" host "host:$v" || continue; any=1; host_target "$v"; done
  [ $any -eq 1 ] || note "no host interpreter matches PY=$PY"
}

# ---- chroots -----------------------------------------------------------------------------

root_of() { echo "$BASE/chroot-$1"; }
suite_arch() { case $1 in *-arm64) echo arm64 ;; *) echo "" ;; esac; }  # "" = the host's
suite_machine() { case $1 in *-arm64) echo aarch64 ;; *) uname -m ;; esac; }  # as `uname -m` says inside
suite_dist() { echo "${1%-arm64}"; }
any_foreign_suite() { local s; for s in $(suites); do [ -n "$(suite_arch "$s")" ] && return 0; done; return 1; }
mounts_under() { findmnt -rn -o TARGET 2>/dev/null | grep -E "^$1(/|$)" | sort -r || true; }
umount_under() { local m; for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m"; done; }
# Only what this run mounted is unmounted again (someone may be working in a chroot by hand).
MOUNTED=()
mount_pseudo_fs() { # root : /proc, and a private devpts (pexpect's pseudo-terminals in test_repl)
  if ! mountpoint -q "$1/proc"; then mount -t proc proc "$1/proc" && MOUNTED+=("$1/proc") || return 1; fi
  # Since Linux 4.7 the chroot's /dev/ptmx node opens the devpts instance at its sibling pts/;
  # newinstance keeps the host's terminals out of it.
  mkdir -p "$1/dev/pts"
  if ! mountpoint -q "$1/dev/pts"; then
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$1/dev/pts" && MOUNTED+=("$1/dev/pts") || return 1
  fi
}
release_mounts() { # [root] : unmount what this run mounted (under root, or everything)
  local m keep=()
  for m in "${MOUNTED[@]}"; do
    case $m in "${1:-}"/*) umount "$m" 2>/dev/null || umount -l "$m" ;; *) keep+=("$m") ;; esac
  done
  MOUNTED=("${keep[@]}")
}
in_chroot() { # root cmd...  (clean environment: nothing of the host's PIP_*/pyenv/cargo leaks in)
  local root=$1; shift
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

selected_targets() { # the CHROOT_TARGETS entries PY selects
  local t s i
  for t in $CHROOT_TARGETS; do IFS=: read -r s i _ <<<"$t"; selected "$s" "$i" "$s:$i" && echo "$t"; done
}
builder_of() { suite_dist "$1"; }  # the host-architecture chroot that compiles for a foreign suite
target_suites() { selected_targets | cut -d: -f1 | awk '!seen[$0]++'; }
suites() { # the chroots to set up: the selected targets' and, before a foreign one, its builder's
  local s
  for s in $(target_suites); do [ -n "$(suite_arch "$s")" ] && builder_of "$s"; echo "$s"; done | awk '!seen[$0]++'
}
builds_for() { # suite -> 0 if it is the builder of a selected foreign suite
  local s; for s in $(target_suites); do [ -n "$(suite_arch "$s")" ] && [ "$(builder_of "$s")" = "$1" ] && return 0; done; return 1
}
pkgs_for() { # suite -> its Debian packages, one a line
  local t s p
  for t in $(selected_targets); do IFS=: read -r s _ p <<<"$t"; [ "$s" = "$1" ] && tr ',' '\n' <<<"$p"; done
  builds_for "$1" && tr ' ' '\n' <<<"$CROSS_PKGS"
  tr ' ' '\n' <<<"$CHROOT_PKGS"
}

chroot_ready() { # suite pkgs... -> 0 if the chroot has them all (per its marker) and its interpreters run
  local suite=$1 root p t s i; root=$(root_of "$1"); shift
  [ -f "$root/.ci-ready" ] || return 1
  for p in "$@"; do tr ' ' '\n' <"$root/.ci-ready" | grep -qxF "$p" || return 1; done
  for t in $(selected_targets); do
    IFS=: read -r s i _ <<<"$t"; [ "$s" = "$suite" ] || continue
    in_chroot "$root" "$i" -c 'import pytest' 2>/dev/null || return 1
  done
}

setup_host_tools() {
  local need="" conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  command -v debootstrap >/dev/null || need=debootstrap
  if any_foreign_suite && ! [ -f "$conf" ]; then need="$need qemu-user-static"; fi
  if [ -n "$need" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "$need missing and this is not root: cannot set up chroots"; return 1; }
    timed "apt-get install ${need# } (host)" quiet "$LOGS/apt-host.log" \
      sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need" || return 1
  fi
  any_foreign_suite || return 0
  # Register the emulator with the kernel (F: opened now, so it also runs inside chroots).
  [ -f /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return 0
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    { echo "cannot mount binfmt_misc: no arm64 emulation"; return 1; }
  cat "$conf" >/proc/sys/fs/binfmt_misc/register || { echo "cannot register qemu-aarch64 with binfmt_misc"; return 1; }
  note "registered $(sed -n 's/^interpreter //p' /proc/sys/fs/binfmt_misc/qemu-aarch64) for aarch64 binaries"
}

setup_chroot() { # suite
  local suite=$1 root pkgs rc arch foreign; root=$(root_of "$1") arch=$(suite_arch "$1")
  mapfile -t pkgs < <(pkgs_for "$suite" | awk 'NF && !seen[$0]++')
  if chroot_ready "$suite" "${pkgs[@]}"; then note "chroot $suite ready ($root)"; return 0; fi
  [ "$(id -u)" -eq 0 ] || { echo "chroot $suite needs setting up, which needs root"; return 1; }
  if [ ! -f "$root/.debootstrap-ok" ] && [ ! -f "$root/.ci-ready" ]; then
    [ -z "$(mounts_under "$root")" ] || { echo "refusing to delete $root: mounts inside"; return 1; }
    rm -rf "$root"
    # shellcheck disable=SC2086
    timed "debootstrap $suite" quiet "$LOGS/debootstrap-$suite.log" \
      debootstrap --variant=minbase ${arch:+--arch "$arch"} "$(suite_dist "$suite")" "$root" $DEBIAN_MIRROR || return 1
    touch "$root/.debootstrap-ok"
  fi
  # testing/sid Release files carry Valid-Until and the archive served here can be older than
  # that; harmless for the stable suites.
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Retries "3";\nAPT::Install-Recommends "false";\n' \
    >"$root/etc/apt/apt.conf.d/99anywait-ci"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  mount_pseudo_fs "$root" || return 1
  # A package of another architecture (the cross toolchain's libstd-rust-dev:arm64) needs
  # that architecture known to dpkg first.
  foreign=$(printf '%s\n' "${pkgs[@]}" | sed -n 's/.*:\([a-z0-9]*\)$/\1/p' | sort -u | sed 's/^/dpkg --add-architecture /; s/$/ \&\&/' | tr '\n' ' ')
  timed "apt-get install in $suite" quiet "$LOGS/apt-$suite.log" in_chroot "$root" sh -c \
    "$foreign apt-get update -q && apt-get install -y -q ${pkgs[*]} && apt-get clean"; rc=$?
  release_mounts "$root"
  [ $rc -eq 0 ] || return 1
  { [ -f "$root/.ci-ready" ] && tr ' ' '\n' <"$root/.ci-ready"; printf '%s\n' "${pkgs[@]}"; } |
    awk 'NF && !seen[$0]++' | tr '\n' ' ' >"$root/.ci-ready.new" && mv "$root/.ci-ready.new" "$root/.ci-ready"
}

setup_chroots() { # sets BROKEN_SUITES
  local s
  BROKEN_SUITES=""
  mkdir -p "$BASE"
  if ! setup_host_tools; then BROKEN_SUITES=$(suites | tr '\n' ' '); return 1; fi
  for s in $(suites); do
    log "set up chroot $s"
    setup_chroot "$s" || { BROKEN_SUITES="$BROKEN_SUITES $s"; echo "chroot $s could not be set up"; }
  done
  [ -z "$BROKEN_SUITES" ]
}

chroot_pyinfo() { # root interpreter -> "stdlib include ext_suffix sysconfigdata_name version"
  in_chroot "$1" "$2" -c 'import sys, sysconfig as s
try: n = s._get_sysconfigdata_name()
except AttributeError: n = "_sysconfigdata_%s_%s_%s" % (sys.abiflags, sys.platform, sys.implementation._multiarch)
print(s.get_path("stdlib"), s.get_path("include"), s.get_config_var("EXT_SUFFIX"), n, sys.version.split()[0])'
}

pyo3_config() { # suite interpreter -> (printed) a PyO3 config file describing the chroot's
  # interpreter, in pyo3-build-config's format: what maturin and PyO3 read instead of running
  # it (maturin only runs an interpreter of the host's architecture when it is not cross-compiling)
  in_chroot "$(root_of "$1")" "$2" -c 'import sys, sysconfig
v = sysconfig.get_config_var
flags = [f for f in ("Py_DEBUG", "Py_REF_DEBUG", "Py_TRACE_REFS", "COUNT_ALLOCS", "Py_GIL_DISABLED") if v(f)]
print("implementation=CPython", "version=%d.%d" % sys.version_info[:2], "shared=%s" % str(bool(v("Py_ENABLE_SHARED"))).lower(),
      "abi3=false", "pointer_width=%d" % (8 * v("SIZEOF_VOID_P")), "build_flags=" + ",".join(flags),
      "suppress_build_script_link_lines=false", sep="\n")'
}

cross_env() { # suite interpreter -> the PyO3 cross settings (VAR=value words, for env) that
  # build on the host for the chroot's interpreter: its sysconfigdata, and its headers for build.rs
  local root stdlib include suffix scd version
  root=$(root_of "$1")
  read -r stdlib include suffix scd version < <(chroot_pyinfo "$root" "$2")
  [ -n "$version" ] || { echo "cannot run $2 in the $1 chroot" >&2; return 1; }
  [ -f "$root$include/Python.h" ] || { echo "no Python.h in $root$include (is the -dev package installed?)" >&2; return 1; }
  echo "PYO3_BUILD_EXTENSION_MODULE=1 PYO3_CROSS_LIB_DIR=$root$stdlib _PYTHON_SYSCONFIGDATA_NAME=$scd ANYWAIT_PYTHON_INCLUDE=$root$include"
}

build_cross() { # suite interpreter : compile on the host for the chroot's interpreter, stage a tree
  local suite=$1 interp=$2 root suffix version tdir run settings
  root=$(root_of "$suite") tdir=$CACHE/target/$suite-$interp run=$(root_of "$suite")/opt/anywait/$interp
  settings=$(cross_env "$suite" "$interp") || return 1
  read -r _ _ suffix _ version < <(chroot_pyinfo "$root" "$interp")
  note "$interp is CPython $version; EXT_SUFFIX $suffix; $settings"
  # Clippy too: the 3.14 and 3.15 code paths are compiled nowhere else (the lint step
  # only has the host's interpreters).
  # shellcheck disable=SC2046,SC2086  # the settings and the profile flags are meant to split
  ( cd "$ROOT" && export $settings CARGO_TARGET_DIR="$tdir" &&
    cargo build -p anywait-py --lib $(cargo_profile_args "$PROFILE") &&
    cargo clippy -q -p anywait-py --lib -- -D warnings ) || return 1
  stage_tree "$run" || return 1
  cp "$tdir/$(profile_dir "$PROFILE")/lib_anywait.so" "$run/python/anywait/_anywait$suffix"
}

vendor_into() { # dir : the workspace's crates (cargo vendor, on the host) in dir/vendor, and a
  # dir/.cargo/config.toml that makes every cargo run at or below dir use them. So a build in an
  # emulated chroot never goes online: no index download under emulation, no TLS set-up there.
  mkdir -p "$1/.cargo" && rm -rf "$1/vendor" || return 1
  ( cd "$ROOT" && cargo vendor -q --locked "$1/vendor" >/dev/null ) || { echo "cargo vendor failed"; return 1; }
  printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "vendor"\n' \
    >"$1/.cargo/config.toml"
}

sysroot_of() { echo "/opt/anywait-cross/$1-$2"; }  # suite interpreter -> its files in the builder

stage_sysroot() { # suite interpreter : what PyO3 and build.rs read of a foreign interpreter,
  # copied into its builder at $(sysroot_of): its headers (with the multiarch pyconfig.h beside
  # them) and its sysconfigdata
  local root broot sysroot stdlib include scd multi
  root=$(root_of "$1") broot=$(root_of "$(builder_of "$1")") sysroot=$(sysroot_of "$1" "$2")
  read -r stdlib include _ scd _ < <(chroot_pyinfo "$root" "$2")
  [ -n "$scd" ] || { echo "cannot run $2 in the $1 chroot"; return 1; }
  [ -f "$root$include/Python.h" ] || { echo "no Python.h in $root$include (is the -dev package installed?)"; return 1; }
  multi=/usr/include/$(suite_machine "$1")-linux-gnu/$(basename "$include")
  rm -rf "${broot:?}$sysroot" && mkdir -p "$broot$sysroot$stdlib" "$broot$sysroot$(dirname "$include")" || return 1
  cp -r "$root$include" "$broot$sysroot$include" && cp "$root$stdlib/$scd.py" "$broot$sysroot$stdlib/" || return 1
  if [ -d "$root$multi" ]; then
    mkdir -p "$broot$sysroot$(dirname "$multi")" && cp -r "$root$multi" "$broot$sysroot$multi" || return 1
  fi
}

foreign_env() { # suite interpreter -> VAR=value words every cross build in the builder needs
  local triple include; triple=$(suite_machine "$1")-unknown-linux-gnu
  read -r _ include _ < <(chroot_pyinfo "$(root_of "$1")" "$2")
  echo "CARGO_HOME=/opt/cargo-home CARGO_NET_OFFLINE=true PYO3_BUILD_EXTENSION_MODULE=1 \
ANYWAIT_PYTHON_INCLUDE=$(sysroot_of "$1" "$2")$include \
CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_LINKER=$(suite_machine "$1")-linux-gnu-gcc"
}

build_foreign() { # suite interpreter : cross-compile in the suite's builder chroot (see arm64)
  local suite=$1 interp=$2 root broot run stdlib suffix scd version sysroot src tdir triple rc
  root=$(root_of "$suite") broot=$(root_of "$(builder_of "$suite")") run=$(root_of "$suite")/opt/anywait/$interp
  read -r stdlib _ suffix scd version < <(chroot_pyinfo "$root" "$interp")
  [ -n "$version" ] || { echo "cannot run $interp in the $suite chroot"; return 1; }
  triple=$(suite_machine "$suite")-unknown-linux-gnu
  sysroot=$(sysroot_of "$suite" "$interp") src=/opt/anywait-cross/src tdir=/opt/anywait-target/$suite-$interp
  note "$interp is CPython $version ($(in_chroot "$root" uname -m)); EXT_SUFFIX $suffix; \
$(in_chroot "$broot" cargo --version) in $(builder_of "$suite"), --target $triple"
  stage_sysroot "$suite" "$interp" || return 1
  rm -rf "${broot:?}$src" && mkdir -p "$broot$src" && cp -r "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/crates" "$broot$src/" || return 1
  vendor_into "$broot$src" || return 1
  mount_pseudo_fs "$broot" || return 1
  # The target directory stays in the builder chroot, so a second run rebuilds only what changed.
  in_chroot "$broot" sh -c "cd $src && CARGO_TARGET_DIR=$tdir $(foreign_env "$suite" "$interp") \
    PYO3_CROSS_LIB_DIR=$sysroot$stdlib _PYTHON_SYSCONFIGDATA_NAME=$scd \
    cargo build --offline --locked -p anywait-py --lib --target $triple $(cargo_profile_args "$PROFILE")"; rc=$?
  release_mounts "$broot"
  [ $rc -eq 0 ] || return 1
  stage_tree "$run" || return 1
  cp "$broot$tdir/$triple/$(profile_dir "$PROFILE")/lib_anywait.so" "$run/python/anywait/_anywait$suffix"
}

stage_tree() { # dir : a mirror of what the tests need from the repository, without build output
  local dest=$1 f
  rm -rf "$dest" && mkdir -p "$dest/python" || return 1
  for f in pyproject.toml README.md tests examples docs benches; do
    [ -e "$ROOT/$f" ] && { cp -r "$ROOT/$f" "$dest/" || return 1; }
  done
  cp -r "$ROOT/python/anywait" "$dest/python/" || return 1
  # Peers' wheels whose own test suites run against anywait (fetch_peers, tools/ci.sh).
  if [ -d "${ANYWAIT_PEER_WHEELS:-}" ]; then cp -r "$ANYWAIT_PEER_WHEELS" "$dest/peers" || return 1; fi
  find "$dest" \( -name '*.so' -o -name __pycache__ -o -name .mypy_cache -o -name .pytest_cache \) -prune \
    -exec rm -rf {} +
}

in_tree() { # suite interpreter command : run the shell command (expanded inside the chroot,
  # globs included) in the chroot's staged tree for interpreter, /proc mounted
  local root rc; root=$(root_of "$1")
  mount_pseudo_fs "$root" || return 1
  timeout --foreground -k 30 "$(budget_timeout)" chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH="/opt/anywait/$2/python" sh -c "cd /opt/anywait/$2 && $3"; rc=$?
  release_mounts "$root"
  return $rc
}

test_chroot() { # suite interpreter
  local which="" TEST_TIMEOUT=$TEST_TIMEOUT
  # Under emulation: the chosen tests, and the slowest named, to keep the CI budget in view.
  if [ -n "$(suite_arch "$1")" ]; then which="$FOREIGN_TESTS --durations=15" TEST_TIMEOUT=$FOREIGN_TEST_TIMEOUT; fi
  in_tree "$1" "$2" "$2 -c 'import anywait._anywait as m; print(\"  testing\", m.__file__)'" || true
  in_tree "$1" "$2" "ANYWAIT_PEER_WHEELS=/opt/anywait/$2/peers ANYWAIT_REQUIRE_PEERS=${ANYWAIT_REQUIRE_PEERS:-} \
    exec $2 -X dev -m pytest -p no:cacheprovider $which $PYTEST_ARGS"
}

build_target() { # suite interpreter : the extension for it, staged in its chroot
  if [ -n "$(suite_arch "$1")" ]; then
    timed "build $1:$2 (Debian cargo in $(builder_of "$1"), cross, $PROFILE)" build_foreign "$1" "$2"
  else
    timed "build $1:$2 (host cargo, $PROFILE)" build_cross "$1" "$2"
  fi
}

suite_broken() { # name suite -> 0 (having skipped or failed name) if setup_chroots could not set it up
  case " $BROKEN_SUITES " in *" $2 "*) ;; *) return 1 ;; esac
  case " $OPTIONAL_SUITES " in
    *" $2 "*) skip "$1" "the $2 chroot could not be set up (see $LOGS/*-$2.log); an optional suite" ;;
    *) record "$1" 1 "the $2 chroot could not be set up (see $LOGS/*-$2.log)" ;;
  esac
}

chroot_target() { # suite interpreter
  local s=$1 i=$2 name="$1:$2" rc
  log "$name"
  suite_broken "$name" "$s" && return
  over_budget "$name" && return
  build_target "$s" "$i" || { record "$name" 1 "build failed"; return; }
  timed "pytest $name" test_chroot "$s" "$i"; rc=$?
  record "$name" $rc "$(pytest_verdict $rc "$([ -n "$(suite_arch "$s")" ] && echo FOREIGN_TEST_TIMEOUT)")"
}

lock_chroots() { # one run at a time uses $BASE (fd 9 until unlock_chroots)
  mkdir -p "$(dirname "$BASE")" && exec 9>"$BASE.lock"
  flock -n 9 || { echo "waiting for another run using $BASE"; flock -w 3600 9; }
}
unlock_chroots() { exec 9>&-; }

run_chroots() {
  local t s i
  [ -n "$(selected_targets)" ] || { note "no chroot interpreter matches PY=$PY"; return 0; }
  lock_chroots
  setup_chroots
  for t in $(selected_targets); do IFS=: read -r s i _ <<<"$t"; chroot_target "$s" "$i"; done
  unlock_chroots
}

cleanup_mounts() { release_mounts; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run, not sourced
  set -uo pipefail
  trap cleanup_mounts EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  case "${1:-all}" in
    setup) setup_chroots; record "chroot set-up" $? ;;
    host) run_host ;;
    chroots) run_chroots ;;
    all) run_host; run_chroots ;;
    clean)
      umount_under "$BASE"
      [ -z "$(mounts_under "$BASE")" ] || { echo "mounts left under $BASE, not deleting"; exit 1; }
      rm -rf "$BASE" "$BASE.lock"; echo "removed $BASE"; exit 0 ;;
    shell) # a shell inside a chroot, /proc mounted, for poking at a failure
      root=$(root_of "${2:?usage: $0 shell SUITE}"); mount_pseudo_fs "$root" && in_chroot "$root" bash; exit ;;  # trap unmounts
    *) echo "usage: $0 [setup|host|chroots|all|clean|shell SUITE]"; exit 2 ;;
  esac
  summary
fi
