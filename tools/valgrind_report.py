"""Summarise the memcheck logs of one `make valgrind` run (tools/valgrind.sh).

usage: valgrind_report.py LOG_DIR

LOG_DIR holds one ``vg.<pid>.log`` per process valgrind ran: pytest and every child it
traced (scenario interpreters, forked children). For each process this reads its command,
its ERROR SUMMARY and its LEAK SUMMARY, then prints:

* the ERROR SUMMARY and LEAK SUMMARY of the first process (pytest itself), verbatim;
* a table of every process that had errors or anywait's leaks;
* each distinct error (its kind and stack), once, with the processes it came from;
* each definite leak attributed to anywait, once, with its full stack.

Errors are memcheck's reports other than leaks (invalid reads and writes, uses of
uninitialised values, bad frees, overlapping copies...): every one counts, whoever is to
blame, unless tools/valgrind-python.supp suppresses it.

A definite leak is *attributed to anywait* when the allocation stack reaches anywait's
own code (a Rust frame of the crates ``_anywait`` (anywait-py) or ``anywait_fiber``, or a
frame in the ``_anywait`` extension without debug information) before it reaches any
Python bytecode (``_PyEval_EvalFrameDefault``): memory that anywait asked for, directly
or through a C API call, as opposed to memory that Python code running on a fiber asked
for. CPython 3.12 does not free everything at exit, so every interpreter ends with
thousands of definitely lost blocks of its own; those are counted, not listed.

One kind of anywait's leaks is expected and listed without failing: in a process made by
``fork()`` (its command and its parent's are the same), the thread-locals of the parent's
other threads, which do not exist in the child, can never be dropped (tests/scenarios/
fork.py, fibers_of_a_thread_that_is_gone_in_the_child). A leak counts as one when the
process is such a child and the allocation stack passes through a thread-local's lazy
initialisation.

Exit status: 1 if any process had an error or a leak attributed to anywait, else 0.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = re.compile(r"^==(\d+)== ?(.*)$")
#: A frame of anywait's own code: the Rust crates (anywait-py is the crate ``_anywait``), or
#: the extension module itself where a frame has no debug information.
ANYWAIT_FRAME = re.compile(r"(?<![\w:])_anywait::|anywait_fiber::|/_anywait[\w.-]*\.so")
EVAL_FRAME = re.compile(r"\b_PyEval_EvalFrameDefault\b")
FRAME = re.compile(r"^\s*(?:at|by) 0x[0-9A-F]+: (.*)$")
LEAK_HEAD = re.compile(r"are definitely lost in loss record")
THREAD_LOCAL_INIT = re.compile(r"thread_local::native::lazy::Storage|__cxa_thread_atexit_impl")
#: What differs between two reports of the same error in different processes.
VARYING = re.compile(r"[\d,]+ bytes in [\d,]+ blocks|loss record [\d,]+ of [\d,]+|0x[0-9A-Fa-f]+")


@dataclass
class Process:
    pid: str
    log: Path
    command: str = "?"
    parent: str = ""
    error_summary: str = ""
    leak_summary: list[str] = field(default_factory=list)
    errors: list[list[str]] = field(default_factory=list)
    leaks: list[list[str]] = field(default_factory=list)  # anywait's definite leaks
    forked: bool = False  # made by fork(), not exec (set by main)
    orphaned: list[list[str]] = field(default_factory=list)  # expected in a fork child
    definite: tuple[int, int] = (0, 0)  # bytes, blocks
    fatal: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", self.error_summary)
        return number(m.group(1)) if m else 0


def number(text: str) -> int:
    return int(text.replace(",", ""))


def frame_name(line: str) -> str:
    m = FRAME.match(line)
    if not m:
        return line.strip()
    return re.sub(r" \((?:in )?[^()]*\)$", "", m.group(1))


def attributed_to_anywait(record: list[str]) -> bool:
    for line in record[1:]:
        if EVAL_FRAME.search(line):
            return False
        if ANYWAIT_FRAME.search(line):
            return True
    return False


def blocks(log: Path) -> list[list[str]]:
    """The log's messages: runs of lines between blank ``==pid==`` lines."""
    out: list[list[str]] = []
    cur: list[str] = []
    for raw in log.read_text(errors="replace").splitlines():
        m = PREFIX.match(raw)
        if not m:
            continue
        text = m.group(2)
        if text.strip() == "":
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(text)
    if cur:
        out.append(cur)
    return out


def parse(log: Path) -> Process:
    m = re.search(r"vg\.(\d+)\.log$", log.name)
    proc = Process(pid=m.group(1) if m else log.name, log=log)
    for block in blocks(log):
        for line in block:  # the header and the closing lines share blocks with others
            if line.startswith("Command: ") and proc.command == "?":
                proc.command = line[len("Command: ") :]
            elif line.startswith("Parent PID: ") and not proc.parent:
                proc.parent = line[len("Parent PID: ") :].strip()
            elif line.startswith("ERROR SUMMARY"):
                proc.error_summary = line
            elif line.startswith("Process terminating"):
                proc.fatal = line
            elif line.startswith("Warning:"):
                proc.warnings.append(line)
        if re.match(r"Thread \d+", block[0]) and len(block) > 1:
            block = block[1:]  # "Thread 2:" before an error of another thread
        head = block[0]
        if head.startswith("LEAK SUMMARY"):
            proc.leak_summary = block[:6]
            for line in block:
                d = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", line)
                if d:
                    proc.definite = (number(d.group(1)), number(d.group(2)))
        elif LEAK_HEAD.search(head):
            if attributed_to_anywait(block):
                proc.leaks.append(block)
        elif len(block) > 1 and FRAME.match(block[1]) and "loss record" not in head:
            proc.errors.append(block)
    return proc


def short(command: str, width: int = 70) -> str:
    command = re.sub(r"\S*/(python[\d.]*d?)\b", r"\1", command)
    return command if len(command) <= width else command[: width - 3] + "..."


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    logs = sorted(Path(sys.argv[1]).glob("vg.*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        print(f"no valgrind logs in {sys.argv[1]}")
        return 1
    procs = [parse(log) for log in logs]
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        parent = by_pid.get(p.parent)
        p.forked = parent is not None and parent.command == p.command
        if p.forked:
            p.orphaned = [r for r in p.leaks if any(THREAD_LOCAL_INIT.search(x) for x in r)]
            p.leaks = [r for r in p.leaks if r not in p.orphaned]
    first = min(procs, key=lambda p: int(p.pid) if p.pid.isdigit() else 0)
    print(f"main process {first.pid}: {short(first.command, 100)}")
    print(f"  {first.error_summary or 'no ERROR SUMMARY (did it finish?)'}")
    for line in first.leak_summary:
        print(f"  {line}")

    bad = [p for p in procs if p.error_count or p.errors or p.leaks]
    total_def = sum(p.definite[0] for p in procs), sum(p.definite[1] for p in procs)
    unfinished = [p for p in procs if not p.error_summary]
    print(
        f"\n{len(procs)} processes; {sum(p.error_count for p in procs)} errors in "
        f"{sum(1 for p in procs if p.error_count)}; "
        f"{sum(len(p.leaks) for p in procs)} definite leak records attributed to anywait in "
        f"{sum(1 for p in procs if p.leaks)}; {sum(len(p.orphaned) for p in procs)} expected in "
        f"fork children; the interpreters' own definitely lost: "
        f"{total_def[0]:,} bytes in {total_def[1]:,} blocks (not anywait's, see the docstring)"
    )
    if unfinished:
        print(f"{len(unfinished)} process(es) wrote no ERROR SUMMARY (killed, or exec'd):")
        for p in unfinished:
            print(f"  {p.pid:>7}  {short(p.command)}  {p.fatal}")
    warned: dict[str, list[str]] = defaultdict(list)
    for p in procs:
        for w in p.warnings:
            warned[re.sub(r"0x[0-9A-Fa-f]+|\b\d+\b", "#", w)].append(p.pid)
    for w, pids in warned.items():
        print(f"valgrind warned {len(pids)} time(s), first in {pids[0]}: {w}")
    if bad:
        print(f"\n{'pid':>7}  {'errors':>6}  {'leaks':>5}  command")
        for p in bad:
            print(f"{p.pid:>7}  {p.error_count:>6}  {len(p.leaks):>5}  {short(p.command)}")

    kinds = (
        ("error", "errors"),
        ("anywait leak", "leaks"),
        ("expected: a fork child's orphaned thread-local (not failed)", "orphaned"),
    )
    for title, attr in kinds:
        seen: dict[tuple[str, ...], list[str]] = {}
        where: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for p in procs:
            for rec in getattr(p, attr):
                frames = [frame_name(x) for x in rec[1:] if FRAME.match(x)]
                kind = VARYING.sub("#", rec[0])
                key = (kind, *frames)
                seen.setdefault(key, rec)
                if p.pid not in where[key]:
                    where[key].append(p.pid)
        for n, (key, rec) in enumerate(seen.items(), 1):
            pids = where[key]
            listed = " ".join(pids[:12]) + (" ..." if len(pids) > 12 else "")
            print(f"\n----- {title} {n} of {len(seen)}, in {len(pids)} process(es): {listed}")
            print("\n".join(rec))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
