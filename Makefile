# anywait - build, test and run targets. Every target is a thin wrapper around tools/ci.sh,
# which CI (.ci/run) runs too; `make help` lists them. Knobs: PY=<version|interpreter|suite>,
# PROFILE=dev|release (test builds), ANYWAIT_CACHE (venvs, cargo target dirs; default
# /var/tmp/anywait-cache), ANYWAIT_CHROOTS (default /var/tmp/anywait-interpreters).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CI_SH := bash tools/ci.sh
export PY PROFILE ANYWAIT_CACHE ANYWAIT_CHROOTS PYTEST_ARGS BENCH_ARGS FOREIGN_TESTS FUZZ_ARGS VALGRIND_TESTS VALGRIND_VENV VALGRIND_OPTS

.PHONY: help demo test lint docs dist test-host test-chroots test-aarch64 bench bench-chroots fuzz valgrind plot clean distclean

help: ## list the targets
	@echo "usage: make TARGET [PY=...] [PROFILE=dev|release]"
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## /{printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: ## install anywait (release build) into a venv and run examples/demo.py
	@$(CI_SH) demo

test: ## the whole suite: lint, pytest on the pyenv interpreters (a selection of it under valgrind too), docs, pytest in the chroots, dist (what CI runs)
	@$(CI_SH) test

lint: ## cargo fmt + clippy, cargo test -p anywait-fiber, ruff check + format, mypy
	@$(CI_SH) lint

docs: ## the API reference from the docstrings (Sphinx, warnings as errors) into $ANYWAIT_CACHE/docs/html
	@$(CI_SH) docs

dist: ## sdist + a wheel per CPython version and architecture (host and chroots) into dist/, checked (auditwheel, twine) and smoke-tested in fresh venvs
	@$(CI_SH) dist

test-host: ## pytest on pyenv 3.11.7, 3.12.1, 3.13.0 (PY=3.12.1 for one)
	@$(CI_SH) test-host

test-chroots: ## pytest on Debian's 3.11d, 3.13, 3.13d, 3.14, 3.14d, 3.15, 3.15d (PY=python3.15d or PY=trixie)
	@$(CI_SH) test-chroots

bench: ## release build into a venv with the bench extra, run benches/bench_fiber.py, bench_portal.py, bench_sync_first.py, bench_nested_run.py, bench_generators.py, bench_files.py and bench_scale.py (BENCH_ARGS=--quick)
	@$(CI_SH) bench

fuzz: ## the differential fuzzer's long run: N programs per backend (default 10000; N=100000), the seed and a reduced program of any divergence (FUZZ_ARGS="--seed S --backend trio")
	@FUZZ_N=$(or $(N),10000) $(CI_SH) fuzz

bench-chroots: ## the same benchmarks on a Debian interpreter in its chroot, release build (PY=python3.15)
	@$(CI_SH) bench-chroots

test-aarch64: ## the whole suite on Debian trixie arm64 (python3.13) under emulation; make test runs its fiber and portal core
	@PY=trixie-arm64 FOREIGN_TESTS=tests $(CI_SH) test-chroots

valgrind: ## memcheck over cargo test -p anywait-fiber and the fiber and portal suites (not scale), children traced, PYTHONMALLOC=malloc; pyenv 3.12.1 (PY=python3.13d: in its chroot)
	@$(CI_SH) valgrind

plot: ## run the portal benchmark (and RSS at several task counts), redraw docs/performance/*.png
	@$(CI_SH) plot

clean: ## delete venvs, cargo target dirs and built extensions (keeps the chroots)
	@$(CI_SH) clean

distclean: ## clean, and delete the chroots too (the next test run sets them up again)
	@$(CI_SH) distclean
