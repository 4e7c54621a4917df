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
# Output in dist/ (the repository's, git-ignored). Debian's interpreters (the chroots) and
# aarch64 get no wheel yet: the host has no interpreter to package them with.

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
  timed "twine check" "$tools/bin/twine" check --strict "$DIST_DIR"/*
  record dist:twine $?
  timed "smoke $LINT_PY (sdist)" _smoke "sdist" "$tool_py" "$(compgen -G "$DIST_DIR/anywait-*.tar.gz" | head -1)"
  record dist:smoke:sdist $?
  note "built: $(cd "$DIST_DIR" && echo *)"
}
