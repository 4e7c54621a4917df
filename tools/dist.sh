# dist.sh - `make dist` (sourced by tools/ci.sh): the sdist and a wheel per host interpreter,
# each checked and smoke-tested where a user would meet it.
#
#   * wheels: `maturin build --release` for every interpreter in HOST_PYTHONS, tagged
#     manylinux_$DIST_MANYLINUX (maturin refuses a wheel that links more than that policy
#     allows); `auditwheel show` reports each one's platform tag;
#   * sdist: `maturin sdist`; `twine check` reads the metadata of everything built;
#   * smoke: each wheel, and the sdist (built from source by pip, as a user without a
#     matching wheel would), installed into a fresh venv outside the source tree, where
#     tools/wheel_smoke.py runs the README's quick start and checks what was installed.
#
#   * chroot wheels: a wheel for each interpreter only a chroot has (the CHROOT_TARGETS whose
#     packages include its -venv: Debian's 3.14 and 3.15, arm64's 3.13). maturin cannot run
#     those interpreters, so it reads a PyO3 config file that the chroot's interpreter writes
#     about itself (pyo3_config). x86_64: the host's maturin and cargo, against the chroot's
#     headers. aarch64: the same maturin executable run in the builder chroot on the unpacked
#     sdist, with Debian's cross toolchain (as the arm64 test build, interpreters.sh). Each
#     wheel is smoke-tested inside its chroot (a fresh venv there, under emulation for arm64).
#
# Output in dist/ (the repository's, git-ignored).

DIST_DIR=${DIST_DIR:-$ROOT/dist}
# glibc 2.34: the newest glibc symbol version the extension links (auditwheel show reports
# it: GLIBC_2.34, from the Rust standard library); maturin refuses the build if that grows.
DIST_MANYLINUX=${DIST_MANYLINUX:-2_34}

_smoke() { # name python package(file) : fresh venv, install, run tools/wheel_smoke.py outside the tree
  local name=$1 py=$2 pkg=$3 venv=$CACHE/dist/smoke-$1
  rm -rf "$venv"
  "$py" -m venv "$venv" || return 1
  if [[ $pkg == *.whl ]]; then
    quiet "$LOGS/dist-install-$name.log" "$venv/bin/pip" install --no-index --no-deps "$pkg" || return 1
  else  # the sdist: pip builds it (maturin from PyPI, cargo from the host), as a user would
    quiet "$LOGS/dist-install-$name.log" "$venv/bin/pip" install "$pkg" || return 1
  fi
  in_dir "$CACHE/dist" "$venv/bin/python" "$ROOT/tools/wheel_smoke.py" "$ROOT/README.md"
}

dist() {
  local v py tool_py tag abi tools whl rc
  log "dist"
  rm -rf "$DIST_DIR" && mkdir -p "$DIST_DIR" "$CACHE/dist"
  tool_py=$(host_python "$LINT_PY") || { record dist 1 "interpreter $LINT_PY (LINT_PY) not found"; return; }
  tools=$CACHE/venv-dist-$LINT_PY
  timed "venv dist ($LINT_PY)" ensure_venv "$tools" "$tool_py" dist || { record dist 1 "venv set-up failed"; return; }
  timed "maturin sdist" in_dir "$ROOT" "$tools/bin/maturin" sdist -o "$DIST_DIR"
  record dist:sdist $?
  for v in $HOST_PYTHONS; do
    py=$(host_python "$v") || { record "dist:wheel:$v" 1 "interpreter $v not found"; continue; }
    tag=$(py_tag "$py") || { record "dist:wheel:$v" 1 "no tag for $py"; continue; }
    abi=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    timed "wheel $tag" in_dir "$ROOT" env CARGO_TARGET_DIR="$CACHE/target/release-$tag" \
      "$tools/bin/maturin" build --release --compatibility "manylinux_$DIST_MANYLINUX" -i "$py" -o "$DIST_DIR"
    rc=$?
    record "dist:wheel:$tag" $rc
    [ $rc -eq 0 ] || continue
    whl=$(compgen -G "$DIST_DIR/anywait-*-$abi-$abi-*.whl" | head -1)
    timed "auditwheel show $tag" "$tools/bin/auditwheel" show "$whl"
    record "dist:auditwheel:$tag" $?
    timed "smoke $tag (wheel)" _smoke "wheel-$tag" "$py" "$whl"
    record "dist:smoke:$tag" $?
  done
  dist_chroots "$tools"
  timed "twine check" "$tools/bin/twine" check --strict "$DIST_DIR"/*
  record dist:twine $?
  timed "smoke $LINT_PY (sdist)" _smoke "sdist" "$tool_py" "$(compgen -G "$DIST_DIR/anywait-*.tar.gz" | head -1)"
  record dist:smoke:sdist $?
  note "built: $(cd "$DIST_DIR" && echo *)"
}

# ---- wheels for the chroots' interpreters ------------------------------------------------

dist_targets() { # the selected chroot targets that get a wheel: those with a -venv package
  local t p
  for t in $(selected_targets); do IFS=: read -r _ _ p <<<"$t"; [[ ,$p, == *-venv,* ]] && echo "$t"; done
}

_wheel_native_chroot() { # suite interpreter tools config : the host's maturin and cargo
  local root include; root=$(root_of "$1")
  read -r _ include _ < <(chroot_pyinfo "$root" "$2")
  in_dir "$ROOT" env PYO3_CONFIG_FILE="$4" ANYWAIT_PYTHON_INCLUDE="$root$include" \
    CARGO_TARGET_DIR="$CACHE/target/release-$1-$2" \
    "$3/bin/maturin" build --release --compatibility "manylinux_$DIST_MANYLINUX" -o "$DIST_DIR"
}

_wheel_foreign() { # suite interpreter tools config sdist : maturin in the builder, cross
  local suite=$1 interp=$2 broot sysroot src=/opt/anywait-cross/sdist out=/opt/anywait-cross/wheels
  local bin=/opt/anywait-cross/bin triple rc
  broot=$(root_of "$(builder_of "$suite")") sysroot=$(sysroot_of "$suite" "$interp")
  triple=$(suite_machine "$suite")-unknown-linux-gnu
  [ -f "$5" ] || { echo "no sdist to build from"; return 1; }
  stage_sysroot "$suite" "$interp" && cp "$4" "$broot$sysroot/pyo3-config.txt" || return 1
  rm -rf "${broot:?}$src" "${broot:?}$out" && mkdir -p "$broot$src" "$broot$out" "$broot$bin" || return 1
  # --touch: maturin writes every sdist member with one fixed old mtime, and cargo decides a
  # path crate is fresh by mtime; restored, an earlier build in the cached target dir wins and a
  # changed crate (anywait-fiber) is silently not rebuilt. Extracted "now", each build redoes ours.
  tar -xzf "$5" -C "$broot$src" --strip-components=1 --touch && vendor_into "$broot$src" || return 1
  # maturin's own executable (a static-enough manylinux binary) runs in the builder as is.
  cp "$3/bin/maturin" "$broot$bin/" && mount_pseudo_fs "$broot" || return 1
  in_chroot "$broot" sh -c "cd $src && CARGO_TARGET_DIR=/opt/anywait-target/wheel-$suite-$interp \
    $(foreign_env "$suite" "$interp") PYO3_CONFIG_FILE=$sysroot/pyo3-config.txt \
    $bin/maturin build --release --target $triple --compatibility manylinux_$DIST_MANYLINUX -o $out"; rc=$?
  release_mounts "$broot"
  [ $rc -eq 0 ] && cp "$broot$out"/*.whl "$DIST_DIR/"
}

_smoke_in_chroot() { # suite interpreter wheel : a fresh venv in the chroot, outside any tree
  local root dir=/opt/anywait-smoke/$2 whl rc; root=$(root_of "$1") whl=$(basename "$3")
  rm -rf "${root:?}$dir" && mkdir -p "$root$dir/tools" "$root$dir/tests" || return 1
  cp "$3" "$ROOT/README.md" "$root$dir/" && cp "$ROOT/tools/wheel_smoke.py" "$root$dir/tools/" &&
    cp "$ROOT/tests/test_docs_examples.py" "$root$dir/tests/" || return 1
  mount_pseudo_fs "$root" || return 1
  quiet "$LOGS/dist-install-$1-$2.log" in_chroot "$root" sh -c "cd $dir && $2 -m venv venv &&
    PIP_DISABLE_PIP_VERSION_CHECK=1 venv/bin/pip install --no-index --no-deps ./$whl"; rc=$?
  [ $rc -eq 0 ] && { in_chroot "$root" sh -c "cd $dir && exec venv/bin/python tools/wheel_smoke.py README.md"; rc=$?; }
  release_mounts "$root"
  return $rc
}

dist_chroots() { # tools-venv : a wheel for each interpreter only a chroot has, checked and smoke-tested
  local wanted t s i name cfg version abi whl rc
  # Computed before the local below hides the caller's list from dist_targets.
  wanted=$(dist_targets | tr '\n' ' ')
  local CHROOT_TARGETS=$wanted  # the set-up and the loop see only the wheel targets
  [ -n "${CHROOT_TARGETS// /}" ] || { note "no chroot interpreter to build a wheel for (PY=${PY:-})"; return 0; }
  lock_chroots
  setup_chroots
  for t in $CHROOT_TARGETS; do
    IFS=: read -r s i _ <<<"$t"; name="$s:$i"
    log "dist $name"
    suite_broken "dist:wheel:$name" "$s" && continue
    over_budget "dist:wheel:$name" && continue
    cfg=$CACHE/dist/pyo3-$s-$i.txt
    pyo3_config "$s" "$i" >"$cfg" || { record "dist:wheel:$name" 1 "cannot run $i in the $s chroot"; continue; }
    version=$(sed -n 's/^version=//p' "$cfg") abi=cp${version/./}
    if [ -n "$(suite_arch "$s")" ]; then
      timed "wheel $name (maturin in $(builder_of "$s"), cross)" _wheel_foreign "$s" "$i" "$1" "$cfg" \
        "$(compgen -G "$DIST_DIR/anywait-*.tar.gz" | head -1)"
    else
      timed "wheel $name" _wheel_native_chroot "$s" "$i" "$1" "$cfg"
    fi
    rc=$?
    record "dist:wheel:$name" $rc
    [ $rc -eq 0 ] || continue
    whl=$(compgen -G "$DIST_DIR/anywait-*-$abi-$abi-*_$(suite_machine "$s").whl" | head -1)
    [ -n "$whl" ] || { record "dist:wheel:$name" 1 "maturin wrote no $abi $(suite_machine "$s") wheel"; continue; }
    timed "auditwheel show $name" "$1/bin/auditwheel" show "$whl"
    record "dist:auditwheel:$name" $?
    timed "smoke $name (wheel, in the chroot)" _smoke_in_chroot "$s" "$i" "$whl"
    record "dist:smoke:$name" $?
  done
  unlock_chroots
}
