"""What the benchmarks share: the machine's load beside each section, a section repeated when the load was high,
and a table of targets, each with the figure measured, the peer or the limit in the same run, and met or missed.

    from verdicts import Section, Targets

    with Section("(a) one 1 GiB file") as section:      # prints the load before and after
        ...
    figures = section_with_retries("(a) ...", run_a)     # reruns run_a (up to 3 times) while the load was high

    targets = Targets()
    targets.at_most("put 1 GiB", tusk_s, "2x dd conv=fsync", 2 * dd_s, unit="s")
    targets.print()

"The load was high" means, on Linux, that other processes used more than OTHERS_HIGH of the machine's CPU
time during the section: the CPU time (with that of the children they waited for) of every process that is
not this one, one of its descendants or a kernel thread, from /proc at the start and the end of the section
(approximate: a child's time counts when its parent reaps it, and a process ended meanwhile is not seen).
The 1-minute load average also counts the benchmark's own processes (and tasks waiting on the disk), so a
busy section would otherwise look loaded by itself. Where /proc is missing, the load average decides (above
HIGH_LOAD, before or after the section).
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["HIGH_LOAD", "OTHERS_HIGH", "Section", "Targets", "discard", "load_text", "section_with_retries"]

T = TypeVar("T")
CPUS = os.cpu_count() or 1
HIGH_LOAD = 1.5 * CPUS  # a 1-minute load above this, over a section, and its figures are suspect
OTHERS_HIGH = 0.25  # other processes using more than this share of all CPUs during a section: its figures too
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_TRASH: list[Path] = []


def discard(path: Path) -> None:
    """Put a case's directory out of the way now and delete it when the benchmark ends, not between cases.

    On ext4 the inode allocator passes over inodes freed in the last minute or more (``recently_deleted``,
    reading each one's inode table block), so deleting the 100k files of one case makes every file the next
    case creates slower: measured here, a warm-worker job of 1,000 tiny datums took 5.0 ms per datum right
    after deleting the previous case's home and 1.5 ms with none deleted nearby. A rename frees no inode.
    """
    if not path.exists():
        return
    trash = path.parent / ".trash"
    trash.mkdir(exist_ok=True)
    target = trash / f"{path.name}-{uuid.uuid4().hex[:8]}"
    path.rename(target)
    if not _TRASH:
        atexit.register(_empty_trash)
    _TRASH.append(trash)


def release_pages(path: Path) -> None:
    """Truncate every file under ``path`` to nothing, before ``discard``: the page cache holding them is freed
    now, so the next contestant writes into memory the machine has used before, as each ``dd`` run reuses the
    pages of the file the run before it deleted. On this VM memory (and disk blocks) never touched before cost
    more on first touch: touching 18 GiB of fresh memory took 46 s, and 1 GiB through dd conv=fsync took
    0.75 s back to back but 2.5-3.4 s right after other work. No inode is freed, so the next case's file
    creation is not slowed either (see ``discard``).
    """
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.truncate(full, 0)


def compile_bytecode() -> None:
    """Compile Tusk's modules to bytecode once, before anything is timed, as ``pip install`` does for a wheel.

    The checkout is an editable install, whose modules Python compiles on first import and caches in
    ``__pycache__``; with ``PYTHONDONTWRITEBYTECODE`` set (as on this machine) it caches nothing and compiles
    every imported module again in every command: about 0.1 s of each Tusk CLI run, which no installed Tusk
    pays and no peer installed with pip (DVC) pays either. ``compileall`` writes the cache whatever that says.
    """
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src"), quiet=1)


def _empty_trash() -> None:
    for trash in dict.fromkeys(_TRASH):
        shutil.rmtree(trash, ignore_errors=True)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {CPUS} cores"


def _processes() -> dict[int, tuple[int, float]] | None:
    """pid -> (ppid, CPU seconds of the process and of the children it waited for), or None without /proc.
    Kernel threads are left out; so are init's waited-for children (orphans of any process, this one's too)."""
    if not os.path.isdir("/proc/self"):
        return None
    found: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid ...
        pid, ppid = int(name), int(fields[1])
        if pid == 2 or ppid == 2:  # kthreadd and the kernel's threads
            continue
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        found[pid] = (ppid, (utime + stime + (0 if pid == 1 else cutime + cstime)) / _TICK)
    return found


def _others_cpu_s(start: dict[int, tuple[int, float]], end: dict[int, tuple[int, float]]) -> float:
    """CPU seconds used between two snapshots by processes other than this one and its descendants."""
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen = set()
        while pid not in (0, 1) and pid not in seen:
            if pid == me:
                return True
            seen.add(pid)
            pid = end[pid][0] if pid in end else 0
        return False

    return sum(cpu - (start[pid][1] if pid in start else 0.0) for pid, (_, cpu) in end.items() if not ours(pid))


class Section:
    """``with Section(title):`` prints the title with the load before, and the load after, with the share of
    the CPUs other processes used meanwhile."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.before = 0.0
        self.after = 0.0
        self.others: float | None = None  # share of all CPUs used by other processes during the section
        self._start: tuple[float, dict[int, tuple[int, float]] | None] = (0.0, None)

    def __enter__(self) -> Section:
        self.before = os.getloadavg()[0]
        print(f"{self.title}   [{load_text()}]", flush=True)
        self._start = (time.monotonic(), _processes())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, end = time.monotonic(), _processes()
        self.after = os.getloadavg()[0]
        wall0, start = self._start
        others = ""
        if start is not None and end is not None and wall > wall0:
            # at most all of it: a child's whole time lands in its parent's when reaped, perhaps in this section
            self.others = min(1.0, max(0.0, _others_cpu_s(start, end)) / ((wall - wall0) * CPUS))
            others = f"; others used {100 * self.others:.0f}% of the CPUs over {wall - wall0:.1f} s"
        print(f"    ... [{load_text()} after{others}]", flush=True)

    @property
    def pressure(self) -> float:
        """How loaded the machine was by others, in units of the threshold (above 1: high)."""
        if self.others is not None:
            return self.others / OTHERS_HIGH
        return max(self.before, self.after) / HIGH_LOAD

    @property
    def high(self) -> bool:
        return self.pressure > 1.0


def section_with_retries(title: str, run: Callable[[], T], attempts: int = 3, pause: float = 5.0) -> T:
    """Run a section; while the load was high during it, run it again (up to ``attempts`` in all, ``pause``
    seconds apart), keeping the figures of the run with the lowest load, and say so."""
    best: tuple[float, T] | None = None
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(pause)
        with Section(title if attempt == 1 else f"{title} (again: the load was high, run {attempt})") as section:
            figures = run()
        if best is None or section.pressure < best[0]:
            best = (section.pressure, figures)
        if not section.high:
            break
    assert best is not None
    if best[0] > 1.0:
        print(f"    (the load stayed high for {attempts} runs: these figures, of the least loaded run, are of a "
              "loaded machine)")
    elif attempt > 1:
        print("    (figures of the least loaded run)")
    return best[1]


@dataclass
class _Row:
    measure: str
    measured: str
    against: str
    target: str
    met: bool | None  # None: not measured this run


@dataclass
class Targets:
    """A table of targets: ``measure | measured | against (same run) | target | met``."""

    rows: list[_Row] = field(default_factory=list)

    def at_most(self, measure: str, value: float, against: str, limit: float, unit: str = "s",
                target: str | None = None, scale: float = 1.0) -> None:
        """Met when ``value <= limit``; both shown in ``unit`` after multiplying by ``scale``."""
        self._add(measure, value, against, limit, unit, target or f"<= {self._fmt(limit * scale, unit)}",
                  value <= limit, scale)

    def at_least(self, measure: str, value: float, against: str, limit: float, unit: str = "x",
                 target: str | None = None, scale: float = 1.0) -> None:
        """Met when ``value >= limit``."""
        self._add(measure, value, against, limit, unit, target or f">= {self._fmt(limit * scale, unit)}",
                  value >= limit, scale)

    def equal(self, measure: str, value: float, expected: float, unit: str = "") -> None:
        self._add(measure, value, "", expected, unit, f"= {self._fmt(expected, unit)}", value == expected, 1.0)

    def _add(self, measure: str, value: float, against: str, limit: float, unit: str, target: str, ok: bool,
             scale: float) -> None:
        missing = any(isinstance(v, float) and math.isnan(v) for v in (value, limit))
        self.rows.append(_Row(measure, "-" if missing else self._fmt(value * scale, unit), against, target,
                              None if missing else ok))

    @staticmethod
    def _fmt(v: float, unit: str) -> str:
        if unit == "x":
            return f"{v:.2f}x"
        if unit == "s":
            return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
        if unit == "ms":
            return f"{v:.2f} ms"
        if unit == "MiB":
            return f"{v:.2f} MiB"
        return f"{v:g}{(' ' + unit) if unit else ''}"

    def print(self, title: str = "targets") -> None:
        head = ("measure", "measured", "against (same run)", "target", "")
        table = [head, *((r.measure, r.measured, r.against, r.target,
                          "not run" if r.met is None else ("met" if r.met else "MISSED")) for r in self.rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        print(f"\n{title}   [{load_text()}]")
        for row in table:
            print("  " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        met = sum(1 for r in self.rows if r.met)
        print(f"  {met} of {len(self.rows)} targets met")
