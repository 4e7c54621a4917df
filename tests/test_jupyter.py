"""The IPython extension (``%load_ext anywait``, ``anywait._jupyter``) in a real
Jupyter kernel: ipykernel started and driven through ``jupyter_client``, as a notebook
front end does (execute, read iopub until idle, interrupt), and plain IPython run as a
program. No mocks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip(
    "ipykernel",
    reason="ipykernel is not installed: host venvs have it (test extra), chroots do not",
)
pytest.importorskip(
    "jupyter_client",
    reason="jupyter_client is not installed: the host venvs have it, the chroots do not",
)
from jupyter_harness import TIMEOUT, Kernel


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        assert k.ok("%load_ext anywait") == ""
        k.ok(
            """
            import asyncio, contextvars, anywait

            async def value(v, delay=0.01):
                await asyncio.sleep(delay)
                return v
            """
        )
        yield k
    finally:
        k.close()


def test_await_and_library_asyncio_run_in_a_cell(kernel: Kernel) -> None:
    assert kernel.ok("print(anywait.await_(value(42)))") == "42\n"
    kernel.ok("def library(v):\n    return asyncio.run(value(v))")  # as a library does
    assert kernel.ok("print(library(7), library(8))") == "7 8\n"
    outcome = kernel.run("library(9)")
    assert outcome.results == ["9"]


def test_objects_of_earlier_cells_keep_working(kernel: Kernel) -> None:
    kernel.ok(
        """
        queue = asyncio.Queue()
        async def producer():
            for i in range(3):
                await asyncio.sleep(0.01)
                await queue.put(i)
        background = asyncio.get_running_loop().create_task(producer())

        async def echo(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
        server = anywait.await_(asyncio.start_server(echo, "127.0.0.1", 0))
        reader, writer = anywait.await_(
            asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        )
        """
    )
    # The background task ran between the cells, on the kernel's loop.
    assert kernel.ok("print([anywait.await_(queue.get()) for _ in range(3)])") == "[0, 1, 2]\n"
    assert (
        kernel.ok(
            """
        writer.write(b"hello\\n")
        anywait.await_(writer.drain())
        print(anywait.await_(asyncio.wait_for(reader.readline(), 10)))
        """
        )
        == "b'HELLO\\n'\n"
    )
    kernel.ok(
        """
        writer.close()
        anywait.await_(writer.wait_closed())
        server.close()
        anywait.await_(server.wait_closed())
        """
    )


def test_contextvars_set_in_a_nested_run_persist_as_in_the_shell(kernel: Kernel) -> None:
    """ipykernel runs every message's task in one shared Context: what a nested
    asyncio.run sets is seen after it and by later cells."""
    kernel.ok(
        """
        request = contextvars.ContextVar("request", default="unset")
        async def set_request(v):
            await asyncio.sleep(0)
            request.set(v)
        """
    )
    assert kernel.ok("asyncio.run(set_request('one'))\nprint(request.get())") == "one\n"
    assert kernel.ok("print(request.get())") == "one\n"


def test_comm_messages_are_served_while_a_cell_waits(kernel: Kernel) -> None:
    """A cell waiting for a widget's reply: the comm message that answers it arrives
    while the cell is blocked in await_."""
    kernel.ok(
        """
        replied = asyncio.get_running_loop().create_future()
        def target(comm, open_msg):
            comm.on_msg(lambda msg: replied.set_result(msg["content"]["data"]["answer"]))
        get_ipython().kernel.comm_manager.register_target("anywait-test", target)
        """
    )
    msg_id = kernel.start("print('waiting', flush=True)\nprint(anywait.await_(replied))")
    kernel.wait_for_output(msg_id, "waiting")
    session, shell = kernel.kc.session, kernel.kc.shell_channel
    comm_id = "comm-anywait-test"
    open_msg = session.msg(
        "comm_open", {"comm_id": comm_id, "target_name": "anywait-test", "data": {}}
    )
    shell.send(open_msg)
    shell.send(session.msg("comm_msg", {"comm_id": comm_id, "data": {"answer": 42}}))
    outcome = kernel.finish(msg_id)
    assert outcome.status == "ok", outcome
    assert outcome.stdout == "waiting\n42\n"


def test_control_messages_are_served_while_a_cell_waits(kernel: Kernel) -> None:
    msg_id = kernel.start("print('waiting', flush=True)\nanywait.await_(asyncio.sleep(2))")
    kernel.wait_for_output(msg_id, "waiting")
    request = kernel.kc.session.msg("kernel_info_request")
    kernel.kc.control_channel.send(request)
    t0 = time.monotonic()
    reply = kernel.kc.control_channel.get_msg(timeout=TIMEOUT)
    answered_after = time.monotonic() - t0
    assert reply["msg_type"] == "kernel_info_reply"
    assert answered_after < 1.5  # served during the cell's two-second wait
    assert kernel.finish(msg_id).status == "ok"


def test_interrupt_during_await_stops_the_cell_and_the_kernel_lives(kernel: Kernel) -> None:
    msg_id = kernel.start(
        """
        async def slow():
            try:
                print("waiting", flush=True)  # the interrupt may come from here on
                await asyncio.sleep(60)
            finally:
                print("awaited code cleaned up", flush=True)
        anywait.await_(slow())
        """
    )
    kernel.wait_for_output(msg_id, "waiting")
    time.sleep(0.3)  # the cell is blocked in await_ by now: the loop gets the signal
    kernel.km.interrupt_kernel()
    outcome = kernel.finish(msg_id)
    assert outcome.status == "error"
    assert outcome.errors == [("KeyboardInterrupt", "")]
    assert "awaited code cleaned up" in outcome.stdout
    assert kernel.ok("print(anywait.await_(value('alive')))") == "alive\n"


def test_an_interrupted_await_can_be_caught_and_the_cell_goes_on(kernel: Kernel) -> None:
    msg_id = kernel.start(
        """
        async def waits():
            print("waiting", flush=True)  # the interrupt may come from here on
            await asyncio.sleep(60)
        try:
            anywait.await_(waits())
        except KeyboardInterrupt:
            print("caught; cancel requests left:", asyncio.current_task().cancelling())
        print(anywait.await_(value("after")))
        """
    )
    kernel.wait_for_output(msg_id, "waiting")
    time.sleep(0.3)  # the cell is blocked in await_ by now: the loop gets the signal
    kernel.km.interrupt_kernel()
    outcome = kernel.finish(msg_id)
    assert outcome.status == "ok", outcome
    assert outcome.stdout == "waiting\ncaught; cancel requests left: 0\nafter\n"


def test_interrupt_while_cell_code_runs_is_stock(kernel: Kernel) -> None:
    msg_id = kernel.start(
        """
        import time
        print("spinning", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pass
        """
    )
    kernel.wait_for_output(msg_id, "spinning")
    time.sleep(0.2)
    kernel.km.interrupt_kernel()
    outcome = kernel.finish(msg_id)
    assert outcome.errors == [("KeyboardInterrupt", "")]
    assert kernel.ok("print('alive')") == "alive\n"


def test_an_async_cell_calls_sync_code_that_awaits(kernel: Kernel) -> None:
    assert (
        kernel.ok(
            """
        def helper():
            return anywait.await_(value(5)) + asyncio.run(value(6))
        await asyncio.sleep(0)
        print(helper())
        """
        )
        == "11\n"
    )


def test_unload_puts_stock_asyncio_back() -> None:
    k = Kernel()
    try:
        k.ok("%load_ext anywait")
        k.ok("import asyncio\nstock_ruc = asyncio.BaseEventLoop.run_until_complete")
        k.ok("%unload_ext anywait")
        outcome = k.run("async def noop(): pass\nasyncio.run(noop())")
        assert outcome.status == "error"
        assert outcome.errors[0][0] == "RuntimeError"
        assert "cannot be called from a running event loop" in outcome.errors[0][1]
    finally:
        k.close()


def test_plain_ipython_runs_both_kinds_of_cell_on_one_loop() -> None:
    lines = [
        "import asyncio, anywait",
        "async def running(): return asyncio.get_running_loop()",
        "loop = anywait.await_(running())",  # a sync cell
        "same = (await running()) is loop",  # a top-level await cell
        "print('one loop:', same, asyncio.run(asyncio.sleep(0, 'nested')))",
    ]
    args: list[Any] = [sys.executable, "-m", "IPython", "--ext=anywait", "--no-banner"]
    args.append("--colors=nocolor")
    args += [f"--InteractiveShellApp.exec_lines={line}" for line in lines]
    proc = subprocess.run(
        [*args, "-c", "print('done')"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert "one loop: True nested" in proc.stdout
    assert "done" in proc.stdout
