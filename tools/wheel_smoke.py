"""Smoke test of an installed anywait (``make dist`` runs it in a fresh venv, outside the
source tree, once per wheel and once for the sdist): the package is the installed one,
complete, and works. Usage: python wheel_smoke.py README.md"""

from __future__ import annotations

import asyncio
import importlib.metadata
import pathlib
import sys
import sysconfig

import anywait
import anywait.lowlevel


def readme_quick_start(readme: pathlib.Path) -> str:
    """The README's first python block (its quick start)."""
    lines, block = readme.read_text().splitlines(), None
    for line in lines:
        if block is None and line.strip() == "```python":
            block = []
        elif block is not None and line.strip() == "```":
            return "\n".join(block) + "\n"
        elif block is not None:
            block.append(line)
    raise SystemExit(f"{readme} has no python block")


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
