"""Ingest benchmark: Tusk vs DVC on the same data, in one run, and a table of targets.

    .venv/bin/python bench/ingest.py            # full size: 1 GiB, 100k small files, 1M-file repo
    .venv/bin/python bench/ingest.py --quick    # small sizes, for a smoke run
    .venv/bin/python bench/ingest.py --only b   # one section (raw figures merge into the last run's JSON)

Measures (a) one large file, (b) 100k small files in 100 directories, (c) the
work after changing one file, (d) bytes stored after a 1 MiB insertion in the
middle of the large file, (e) commit time for one changed file in a 1k-file vs
a 1M-file repo. DVC is installed into its own venv under --work.
Page cache is warm for every contestant (data is read once before timing);
`sync` runs before each timed step so no step pays for another's writeback.
Tusk times are whole CLI invocations, including interpreter start-up and the
durability barrier (syncfs) before the commit is published.

Targets, each checked against a peer or floor measured in the same run (the table
ends the output; a section not run this time shows "not run"):

- (a) put the 1 GiB file <= 2x writing the same bytes durably (`dd bs=8M conv=fsync`
  to the work directory's filesystem, median of 3 back to back; Tusk's median of 3), and >= 5x faster than `dvc add`;
- (b) put -r the 100k small files >= 8x faster than `dvc add`, and <= 3x the floor
  walk+read+BLAKE3 (walk the tree, read and hash every file, one process, one thread);
- (c) put -r them again after changing one <= 2x walk+lstat of the tree, plus start-up
  (`tusk --version`);
- (d) the 1 MiB insertion stores <= 3 MiB more;
- (e) a commit in the 1M-file repo <= 2x a commit in the 1k-file repo.

Each section prints the machine's load before and after, and runs again (up to 3
times in all, from a fresh Tusk home) when the load was high (bench/verdicts.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import blake3

from verdicts import Targets, compile_bytecode, discard, release_pages, section_with_retries

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TUSK = [PY, "-m", "tusk"]


def sh(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
       stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> float:
    """Run a command, fail loudly, return wall seconds."""
    subprocess.run(["sync"], check=True)
    t = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, input=stdin, capture_output=True, check=False)
    elapsed = time.perf_counter() - t
    if proc.returncode not in ok:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()[-2000:]}")
    return elapsed


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_all(path: Path) -> None:
    """Read a file or a whole tree once, so every contestant starts from a warm page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass


def read_blake3(path: Path, threads: int) -> float:
    t = time.perf_counter()
    h = blake3.blake3(max_threads=threads)
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    h.hexdigest()
    return time.perf_counter() - t


class Dvc:
    def __init__(self, work: Path) -> None:
        self.venv = work / "dvc-venv"
        self.bin = self.venv / "bin" / "dvc"
        if not self.bin.exists():
            print("installing DVC into", self.venv, flush=True)
            subprocess.run([PY, "-m", "venv", str(self.venv)], check=True)
            subprocess.run([str(self.venv / "bin" / "pip"), "install", "-q", "dvc"], check=True)
        self.version = subprocess.run([str(self.bin), "--version"], capture_output=True, text=True,
                                      check=True).stdout.strip()
        self.env = os.environ | {"DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1"}

    def project(self, path: Path) -> Path:
        discard(path)
        path.mkdir(parents=True)
        self.run(path, "init", "--no-scm", "-q")
        self.run(path, "config", "core.analytics", "false")
        return path

    def run(self, cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> float:
        return sh([str(self.bin), *args], cwd=cwd, env=self.env, ok=ok)


class Tusk:
    def __init__(self, home: Path, fresh: bool = True) -> None:
        if fresh:
            discard(home)
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {"TUSK_HOME": str(home)}

    def run(self, *args: str, stdin: bytes | None = None) -> float:
        return sh([*TUSK, *args], env=self.env, stdin=stdin)

    def stored(self) -> int:
        return tree_bytes(self.home / "objects")


def make_big(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    rng = random.Random(42)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 << 20)
            fh.write(rng.randbytes(n))
            left -= n


def make_small(root: Path, n: int, dirs: int = 100) -> None:
    marker = root.parent / f".small-complete-{n}"
    if marker.exists():
        return
    discard(root)
    rng = random.Random(7)
    per = n // dirs
    for d in range(dirs):
        sub = root / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(per):
            (sub / f"f{f:05}.txt").write_bytes(rng.randbytes(rng.randint(200, 2000)))
    marker.touch()


def median_of(n: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(n))


def build_wide_repo(home: Path, files: int) -> None:
    """A repo of `files` files in directories of 1000, through the SDK (contents repeat, as in real data)."""
    code = f"""
import tusk
c = tusk.Client({str(home)!r})
c.create_repo("wide")
with c.modify("wide@master", "build") as m:
    for i in range({files}):
        m.put_bytes(f"/d{{i // 1000:04}}/f{{i % 1000:04}}", f"row {{i % 5000}}\\n".encode())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")}
    subprocess.run([PY, "-c", code], check=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (64 MiB, 5k files, 20k-file repo)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--no-dvc", action="store_true")
    ap.add_argument("--only", default="abcde", help="sections to run, e.g. 'bc' (figures merge into the last run)")
    args = ap.parse_args()
    compile_bytecode()  # as an installed Tusk has it (verdicts.compile_bytecode)
    big_size = (64 << 20) if args.quick else (1 << 30)
    small_n = 5_000 if args.quick else 100_000
    wide_n = 20_000 if args.quick else 1_000_000
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    data.mkdir(exist_ok=True)
    out = work / "ingest-results.json"
    results: dict[str, object] = json.loads(out.read_text()) if args.only != "abcde" and out.exists() else {}
    results |= {"big_bytes": big_size, "small_files": small_n, "wide_files": wide_n}

    def save() -> None:  # after every step, so a failure late in the run keeps what was measured
        out.write_text(json.dumps(results, indent=2))

    print(f"generating data in {data} ...", flush=True)
    big = data / "big.bin"
    make_big(big, big_size)
    small = data / "small"
    make_small(small, small_n)
    inserted = data / "big-inserted.bin"
    if not inserted.exists() or inserted.stat().st_size != big_size + (1 << 20):
        raw = big.read_bytes()
        mid = len(raw) // 2
        inserted.write_bytes(raw[:mid] + random.Random(9).randbytes(1 << 20) + raw[mid:])
        del raw
    read_all(big)
    read_all(inserted)

    dvc = None if args.no_dvc else Dvc(work)
    results["dvc_version"] = dvc.version if dvc else None

    # the figures measured in this run: the report and its targets use these only (never an earlier run's)
    now: dict[str, object] = {k: results[k] for k in ("big_bytes", "small_files", "wide_files", "dvc_version")}

    def section(title: str, run: Callable[[], dict[str, object]]) -> None:
        figures = section_with_retries(title, run)
        now.update(figures)
        results.update(figures)
        save()

    if "a" in args.only or "d" in args.only:
        section(f"(a, d) one {big_size / (1 << 30):.2f} GiB file", lambda: run_big(work, big, inserted, dvc))
    if "b" in args.only or "c" in args.only:
        section(f"(b, c) {small_n:,} small files", lambda: run_small(work, small, dvc))
    if "e" in args.only:
        section(f"(e) commit in a 1k-file and a {wide_n:,}-file repo", lambda: run_wide(work, wide_n))
    report(now)
    print(f"\nraw figures: {out}")


def dd_fsync(src: Path, dst: Path) -> float:
    """Write ``src``'s bytes to ``dst`` durably (dd bs=8M conv=fsync), seconds; ``dst`` is deleted after."""
    try:
        return sh(["dd", f"if={src}", f"of={dst}", "bs=8M", "conv=fsync", "status=none"])
    finally:
        dst.unlink(missing_ok=True)


def run_big(work: Path, big: Path, inserted: Path, dvc: Dvc | None) -> dict[str, object]:
    results: dict[str, object] = {}
    # floors: read + BLAKE3 of the same file, and writing its bytes durably to the work directory's filesystem
    results["a_read_blake3_1thread_s"] = median_of(3, lambda: read_blake3(big, 1))
    results["a_read_blake3_mt_s"] = median_of(3, lambda: read_blake3(big, blake3.blake3.AUTO))
    # dd back to back, each run reusing the pages and disk blocks of the file the run before deleted: on this VM
    # memory and blocks never used before cost more on first touch (dd took 2.5-3.4 s right after other
    # work, 0.75 s back to back), so this is the machine's best for durable writes, the stricter floor
    results["a_dd_fsync_s"] = median_of(3, lambda: dd_fsync(big, work / "dd-out.bin"))

    # (a) one large file: three puts, each into a new home, the median
    put_runs = []
    for round_ in range(3):
        tusk = Tusk(work / "tusk-a")
        tusk.run("repo", "create", "b")
        put_runs.append(tusk.run("put", "file", "b@master:/big.bin", "-f", str(big)))
        if round_ < 2:
            release_pages(tusk.home)  # as dd's delete frees its file's pages (verdicts.release_pages)
    results["a_tusk_put_s"] = statistics.median(put_runs)
    results["a_tusk_put_runs_s"] = put_runs
    results["a_tusk_reput_same_s"] = tusk.run("put", "file", "b@master:/again.bin", "-f", str(big))
    # (d) 1 MiB inserted in the middle
    before = tusk.stored()
    results["d_tusk_put_inserted_s"] = tusk.run("put", "file", "b@master:/big.bin", "-f", str(inserted))
    results["d_tusk_extra_bytes"] = tusk.stored() - before
    release_pages(tusk.home)
    discard(tusk.home)
    if dvc:  # as Tusk: three adds, each in a new project, the median; the last goes on to (d)
        add_runs = []
        for round_ in range(3):
            proj = dvc.project(work / "dvc-a")
            shutil.copyfile(big, proj / "big.bin")
            read_all(proj / "big.bin")
            add_runs.append(dvc.run(proj, "add", "-q", "big.bin"))
            if round_ < 2:
                release_pages(proj)  # (the next dvc.project discards it)
        results["a_dvc_add_s"] = statistics.median(add_runs)
        results["a_dvc_add_runs_s"] = add_runs
        cache = proj / ".dvc" / "cache"
        before = tree_bytes(cache)
        (proj / "big.bin").unlink()
        shutil.copyfile(inserted, proj / "big.bin")
        read_all(proj / "big.bin")
        results["d_dvc_add_inserted_s"] = dvc.run(proj, "add", "-q", "big.bin")
        results["d_dvc_extra_bytes"] = tree_bytes(cache) - before
        release_pages(proj)
        discard(proj)
    return results


def run_small(work: Path, small: Path, dvc: Dvc | None) -> dict[str, object]:
    # (b) many small files, (c) after changing one
    results: dict[str, object] = {}
    tusk = Tusk(work / "tusk-b")
    tusk.run("repo", "create", "s")
    read_all(small)
    results["b_walk_read_blake3_s"] = median_of(3, lambda: walk_read_blake3(small))
    results["b_tusk_put_s"] = tusk.run("put", "file", "s@master:/small", "-r", "-f", str(small))
    changed = small / "d050" / "f00007.txt"
    original = changed.read_bytes()
    try:
        changed.write_bytes(original + b"changed\n")
        results["c_tusk_put_one_file_s"] = tusk.run("put", "file", "s@master:/small/d050/f00007.txt", "-f",
                                                    str(changed))
        results["c_tusk_reput_all_s"] = tusk.run("put", "file", "s@master:/small", "-r", "-f", str(small))
        results["c_walk_lstat_s"] = median_of(3, lambda: walk_lstat(small))
        results["c_startup_s"] = median_of(3, lambda: tusk.run("--version"))
        if dvc:
            changed.write_bytes(original)
            proj = dvc.project(work / "dvc-b")
            shutil.copytree(small, proj / "small")
            read_all(proj / "small")
            results["b_dvc_add_s"] = dvc.run(proj, "add", "-q", "small")
            (proj / "small" / "d050" / "f00007.txt").write_bytes(original + b"changed\n")
            results["c_dvc_status_s"] = dvc.run(proj, "status", "-q", ok=(0, 1))  # 1 = changes found
            results["c_dvc_readd_s"] = dvc.run(proj, "add", "-q", "small")
            discard(proj)
    finally:
        changed.write_bytes(original)
    discard(tusk.home)
    return results


def walk_files(root: Path, each: Callable[[str], object]) -> float:
    """Walk the tree with scandir and call ``each`` on every file's path, in one thread (seconds)."""
    t = time.perf_counter()
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    each(e.path)
    return time.perf_counter() - t


def _read_blake3(path: str) -> None:
    with open(path, "rb") as fh:
        blake3.blake3(fh.read()).digest()


def walk_read_blake3(root: Path) -> float:
    """The floor of a first put -r: walk the tree, read and BLAKE3 every file, one process, one thread (seconds)."""
    return walk_files(root, _read_blake3)


def walk_lstat(root: Path) -> float:
    """The floor of a re-put that reads nothing: walk the tree and lstat every file (seconds)."""
    return walk_files(root, os.lstat)


def run_wide(work: Path, wide_n: int) -> dict[str, object]:
    # (e) one changed file, small repo vs wide repo
    results: dict[str, object] = {}
    for label, n in (("1k", 1_000), ("wide", wide_n)):
        home = work / f"tusk-e-{label}"
        discard(home)
        t = time.perf_counter()
        build_wide_repo(home, n)
        results[f"e_build_{label}_s"] = time.perf_counter() - t
        wide = Tusk(home, fresh=False)
        results[f"e_commit_{label}_s"] = statistics.median(
            wide.run("put", "file", "wide@master:/d0000/f0001", "-f", "-", stdin=f"v{i}".encode()) for i in range(5)
        )
        trees_before = tree_bytes(home / "objects" / "trees")
        wide.run("put", "file", "wide@master:/d0000/f0002", "-f", "-", stdin=b"one more")
        results[f"e_tree_bytes_written_{label}"] = tree_bytes(home / "objects" / "trees") - trees_before
        discard(home)
    return results


def report(r: dict[str, object]) -> None:
    """The figures of this run, then the table of targets (``r`` holds this run's figures only)."""
    def f(key: str) -> float:
        v = r.get(key)
        return float(v) if isinstance(v, int | float) else float("nan")

    def ratio(a: str, b: str) -> str:
        x = f(a) / f(b)
        return "-" if x != x else f"{x:.1f}x"

    def v(key: str, width: int = 8, prec: int = 2, div: float = 1.0) -> str:  # "-" for a figure not measured
        x = f(key) / div
        return "-".rjust(width) if x != x else f"{x:{width}.{prec}f}"

    def count(key: str) -> str:  # a section not run this time has no figures: say so, don't crash on int(nan)
        v = f(key)
        return "-" if v != v else f"{int(v):,}"

    def secs(key: str) -> str:
        return secs_of(f(key))

    mib = 1 << 20
    dvc = f"DVC {r['dvc_version']}" if r.get("dvc_version") else "DVC (skipped)"
    rows = [
        f"(a) one {f('big_bytes') / (1 << 30):.2f} GiB file",
        f"    read+BLAKE3 (1 thread)    {v('a_read_blake3_1thread_s')} s"
        f"   (multithreaded BLAKE3 {v('a_read_blake3_mt_s', 0)} s)",
        f"    dd bs=8M conv=fsync       {v('a_dd_fsync_s')} s   (writing the bytes durably, median of 3)",
        f"    tusk put file             {v('a_tusk_put_s')} s   (median of 3, each into a new home)"
        f"   = {ratio('a_tusk_put_s', 'a_dd_fsync_s')} dd, {ratio('a_tusk_put_s', 'a_read_blake3_1thread_s')}"
        " read+BLAKE3",
        f"    tusk put, all chunks known{v('a_tusk_reput_same_s')} s"
        f"   = {ratio('a_tusk_reput_same_s', 'a_read_blake3_1thread_s')} read+BLAKE3",
        f"    dvc add                   {v('a_dvc_add_s')} s   (median of 3, each in a new project)"
        f"   tusk is {ratio('a_dvc_add_s', 'a_tusk_put_s')} faster",
        f"(b) {count('small_files')} small files in 100 directories",
        f"    walk+read+BLAKE3          {v('b_walk_read_blake3_s')} s   (one process, one thread, median of 3)",
        f"    tusk put file -r          {v('b_tusk_put_s')} s"
        f"   = {ratio('b_tusk_put_s', 'b_walk_read_blake3_s')} walk+read+BLAKE3",
        f"    dvc add                   {v('b_dvc_add_s')} s"
        f"   tusk is {ratio('b_dvc_add_s', 'b_tusk_put_s')} faster",
        "(c) after changing one of those files",
        f"    tusk put the one file     {v('c_tusk_put_one_file_s')} s",
        f"    tusk put -r the whole dir {v('c_tusk_reput_all_s')} s",
        f"    walk + lstat the tree     {v('c_walk_lstat_s')} s   (the floor of a re-put)",
        f"    tusk --version            {v('c_startup_s')} s   (start-up)",
        f"    dvc status                {v('c_dvc_status_s')} s",
        f"    dvc add (re-add the dir)  {v('c_dvc_readd_s')} s",
        "(d) bytes stored after inserting 1 MiB in the middle of the big file",
        f"    tusk                      {v('d_tusk_extra_bytes', div=mib)} MiB, {v('d_tusk_put_inserted_s', 0)} s",
        f"    dvc                       {v('d_dvc_extra_bytes', div=mib)} MiB, {v('d_dvc_add_inserted_s', 0)} s",
        "(e) commit one changed file, median of 5 CLI runs",
        f"    repo of 1,000 files       {v('e_commit_1k_s', prec=3)} s"
        f"   ({count('e_tree_bytes_written_1k')} bytes of trees written)",
        f"    {'repo of ' + count('wide_files') + ' files':<26}{v('e_commit_wide_s', prec=3)} s"
        f"   ({count('e_tree_bytes_written_wide')} bytes of trees written)",
    ]
    print(f"\nTusk vs {dvc}, same data, same run")
    print("\n".join(rows))

    t = Targets()
    t.at_most("(a) put the big file", f("a_tusk_put_s"), f"dd conv=fsync {secs('a_dd_fsync_s')}",
              2 * f("a_dd_fsync_s"), target=f"<= 2x dd ({secs_of(2 * f('a_dd_fsync_s'))})")
    t.at_least("(a) put the big file, vs dvc add", f("a_dvc_add_s") / f("a_tusk_put_s"),
               f"dvc add {secs('a_dvc_add_s')}", 5.0, target=">= 5x faster")
    t.at_least("(b) put -r the small files, vs dvc add", f("b_dvc_add_s") / f("b_tusk_put_s"),
               f"dvc add {secs('b_dvc_add_s')}", 8.0, target=">= 8x faster")
    t.at_most("(b) put -r the small files", f("b_tusk_put_s"), f"walk+read+BLAKE3 {secs('b_walk_read_blake3_s')}",
              3 * f("b_walk_read_blake3_s"), target=f"<= 3x the floor ({secs_of(3 * f('b_walk_read_blake3_s'))})")
    t.at_most("(c) put -r again, one file changed", f("c_tusk_reput_all_s"),
              f"walk+lstat {secs('c_walk_lstat_s')}, start-up {secs('c_startup_s')}",
              2 * f("c_walk_lstat_s") + f("c_startup_s"),
              target=f"<= 2x walk+lstat + start-up ({secs_of(2 * f('c_walk_lstat_s') + f('c_startup_s'))})")
    dvc_extra = f("d_dvc_extra_bytes")
    t.at_most("(d) 1 MiB inserted: extra bytes stored", f("d_tusk_extra_bytes"),
              "dvc stores -" if dvc_extra != dvc_extra else f"dvc stores {dvc_extra / mib:.2f} MiB", 3.0 * mib,
              unit="MiB", scale=1 / mib)
    t.at_most(f"(e) commit, {count('wide_files')}-file repo", f("e_commit_wide_s"),
              f"1k-file repo {secs('e_commit_1k_s')}", 2 * f("e_commit_1k_s"),
              target=f"<= 2x the 1k-file repo ({secs_of(2 * f('e_commit_1k_s'))})")
    t.print(f"targets (Tusk vs {dvc}, peers and floors measured in this run)")


def secs_of(v: float) -> str:
    return "-" if v != v else f"{v:.3f} s"


if __name__ == "__main__":
    main()
