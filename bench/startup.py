"""Start-up benchmark: what a user waits for before a command does anything, Tusk beside DVC in one run.

    .venv/bin/python bench/startup.py                 # 15 runs of each command, interleaved
    .venv/bin/python bench/startup.py --runs 30 --dvc /path/to/dvc

Pairs timed as whole processes, interleaved (A B A B ...) so drift in the machine's speed hits both:
``tusk --help`` against ``dvc --version`` and ``tusk repo list`` (an embedded store with one repo) against
``dvc status`` (a repo tracking one file). Prints the median and range of each, the median of the per-pair
ratios, and the load average before and after. DVC is found on PATH or given with --dvc; without it, only
Tusk's figures print, with a note. ``python -c pass`` is printed as the interpreter's own floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def _row(name: str, times: list[float]) -> str:
    return (f"  {name:<28} median {statistics.median(times) * 1000:7.1f} ms   "
            f"min {min(times) * 1000:7.1f}   max {max(times) * 1000:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dvc", default=shutil.which("dvc"))
    args = parser.parse_args()
    tusk = [sys.executable, "-m", "tusk"]
    bin_tusk = Path(sys.executable).parent / "tusk"
    if bin_tusk.exists():
        tusk = [str(bin_tusk)]
    with tempfile.TemporaryDirectory(prefix="tusk-bench-startup-") as tmp:
        root = Path(tmp)
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root), "TUSK_HOME": str(root / "home")}
        subprocess.run([*tusk, "repo", "create", "r"], env=env, check=True, capture_output=True)
        (root / "data.csv").write_text("a,b\n1,2\n")
        subprocess.run([*tusk, "put", "file", "r@master:/data.csv", "-f", str(root / "data.csv")], env=env,
                       check=True, capture_output=True)
        pairs: list[tuple[str, list[str], str, list[str] | None]] = [
            ("tusk --help", [*tusk, "--help"], "dvc --version", [args.dvc, "--version"] if args.dvc else None),
            ("tusk repo list", [*tusk, "repo", "list"], "dvc status", [args.dvc, "status"] if args.dvc else None),
        ]
        dvc_repo = root / "dvc-repo"
        if args.dvc:
            dvc_repo.mkdir()
            subprocess.run(["git", "init", "-q"], cwd=dvc_repo, check=True)
            subprocess.run([args.dvc, "init", "-q"], cwd=dvc_repo, env=env, check=True)
            (dvc_repo / "data.csv").write_text("a,b\n1,2\n")
            subprocess.run([args.dvc, "add", "-q", "data.csv"], cwd=dvc_repo, env=env, check=True)
        print(f"start-up, {args.runs} interleaved runs each; load average before: {os.getloadavg()}")
        floor = [_time([sys.executable, "-c", "pass"], root, env) for _ in range(args.runs)]
        print(_row("python -c pass (floor)", floor))
        for name, argv, peer_name, peer in pairs:
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.runs + 1):  # the first pair warms the page cache and is not counted
                ours.append(_time(argv, root, env))
                if peer is not None:
                    theirs.append(_time(peer, dvc_repo, env))
            ours, theirs = ours[1:], theirs[1:]
            print(_row(name, ours))
            if theirs:
                print(_row(peer_name, theirs))
                ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
                print(f"  {name} / {peer_name}: median ratio {ratio:.2f}")
            else:
                print(f"  ({peer_name}: DVC not found; pip install dvc, or pass --dvc)")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
