"""anywait.lowlevel example: leave a deep synchronous call chain and come back, on the same thread.

A recursive, entirely synchronous tree walk hands out one leaf at a time from the
bottom of its recursion. No generators threaded through every level, no threads: the
walk runs on a fiber, and `suspend()` parks its whole native stack until the consumer
asks for the next leaf. This is the mechanism anywait's `await_` is built on.
"""

from __future__ import annotations

from anywait.lowlevel import Fiber, suspend

Tree = list["Tree"] | int


def walk(tree: Tree, depth: int = 0) -> None:
    """Plain recursive code: it neither knows nor cares that it runs on a fiber."""
    if isinstance(tree, int):
        suspend((depth, tree))  # hand the leaf to whoever resumed us
        return
    for child in tree:
        walk(child, depth + 1)


def leaves(tree: Tree) -> list[tuple[int, int]]:
    fiber = Fiber(walk, tree)
    found = []
    item = fiber.switch()
    while not fiber.dead:
        found.append(item)
        item = fiber.switch()
    return found


def main() -> None:
    tree: Tree = [1, [2, [3, [4]], 5], [[[[6]]]]]
    for depth, leaf in leaves(tree):
        print(f"leaf {leaf} at depth {depth}")


if __name__ == "__main__":
    main()
