"""Smoke test of an installed anywait (``make dist`` runs it in a fresh venv, outside the
source tree, once per wheel and once for the sdist): the package is the installed one,
complete, and works. Usage: python wheel_smoke.py README.md"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import pathlib
import sys
import sysconfig

import anywait
import anywait.lowlevel


def readme_quick_start(readme: pathlib.Path) -> str:
    """The README's first python block (its quick start), found as the docs test finds
    every block (tests/test_docs_examples.py, loaded by path: this script runs outside
    the tree's import path, so ``anywait`` stays the installed one)."""
    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "test_docs_examples.py"
    spec = importlib.util.spec_from_file_location("_docs_examples", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    blocks: list[str] = docs.python_blocks(readme)
    if not blocks:
        raise SystemExit(f"{readme} has no python block")
    return blocks[0] + "\n"


def main() -> None:
    site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    package = pathlib.Path(anywait.__file__).resolve().parent
    assert package.parent == site, f"anywait came from {package}, not from {site}"
    for name in ("py.typed", "_anywait.pyi", "lowlevel.py"):
        assert (package / name).is_file(), f"the installed package lacks {name}"
    assert anywait.__version__ == importlib.metadata.version("anywait")

    exec(compile(readme_quick_start(pathlib.Path(sys.argv[1])), "README quick start", "exec"), {})

    def produce() -> str:
        anywait.lowlevel.suspend(1)
        return "done"

    fiber = anywait.lowlevel.Fiber(produce)
    assert [fiber.switch(), fiber.switch()] == [1, "done"]

    async def later() -> str:
        await asyncio.sleep(0.001)
        return "awaited"

    async def main_task() -> str:
        await anywait.ensure_portal()
        return anywait.await_(later())

    assert asyncio.run(main_task()) == "awaited"
    print(f"ok: anywait {anywait.__version__} from {package}")


if __name__ == "__main__":
    main()
