"""Pipeline benchmark: Tusk vs DVC `repro` on the same data and the same per-file work.

    .venv/bin/python bench/pipelines.py            # 10k datums for overhead, 20k files for the change test
    .venv/bin/python bench/pipelines.py --quick    # 1k / 2k

Per file, the work is the same tiny transformation (uppercase the text). Tusk
runs it per datum (glob /*), in a new process per datum as Pachyderm does;
DVC runs one stage whose command loops over every file in one process.
Measured: (1) per-datum overhead over N tiny datums, (2) time and datum count
when 1 of M input files changes, (3) a no-op run. Tusk times are whole CLI
invocations (`tusk put file` runs the triggered job inline).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from ingest import Dvc, Tusk  # noqa: E402

WORK_SCRIPT = """import sys, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
files = [src] if src.is_file() else sorted(p for p in src.rglob('*') if p.is_file())
for f in files:
    (dst / f.name).write_text(f.read_text().upper())
"""
# the same work with transform.datum_batching: one interpreter per worker, fed each datum (tusk.datum_batching)
BATCHED_SCRIPT = """import os, pathlib
from tusk.datum_batching import batch_all_datums
pfs = pathlib.Path(os.environ.get('PFS', '/pfs'))

@batch_all_datums
def upper():
    for f in sorted(p for p in (pfs / 'in').rglob('*') if p.is_file()):
        (pfs / 'out' / f.name).write_text(f.read_text().upper())

upper()
"""

# the same work with transform.function: tusk imports the module once per worker and calls upper() per datum
FUNCTION_MODULE = """import pathlib

def upper(datum):
    src = pathlib.Path(datum.inputs['in'])
    for f in [src] if src.is_file() else sorted(p for p in src.rglob('*') if p.is_file()):
        pathlib.Path(datum.out, f.name).write_text(f.read_text().upper())
"""


def make_files(root: Path, n: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"f{i:06}.txt").write_text(f"record number {i}\n")


def _duration(job: dict[str, str]) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def tusk_case(work: Path, data: Path, runtime: str, parallelism: int, work_kind: str,
              batching: bool = False, function: bool = False) -> dict[str, float]:
    """Create the pipeline on `data`, change one file, rerun with no change; wall and job times for each.

    ``batching``: the same work with ``transform.datum_batching`` (one command per worker, `pachctl next datum`).
    """
    code = work / "code"
    code.mkdir(exist_ok=True)
    (code / "upper.py").write_text(WORK_SCRIPT)
    (code / "batched.py").write_text(BATCHED_SCRIPT)
    (code / "upper_function.py").write_text(FUNCTION_MODULE)
    transform: dict[str, object] = {"cmd": ["cp", "-r", "/pfs/in/.", "/pfs/out/"] if work_kind == "cp" else
                                    [sys.executable, "upper.py", "/pfs/in", "/pfs/out"]}
    if batching:
        transform = {"datum_batching": True, "cmd": [sys.executable, "batched.py"]} if work_kind == "python" else {
            "datum_batching": True, "cmd": ["sh"],
            "stdin": ["while pachctl next datum; do cp -r /pfs/in/. /pfs/out/; done"]}
    if function:
        transform = {"function": "upper_function:upper"}
    kind = f"{work_kind}{'-batched' if batching else ''}{'-function' if function else ''}"
    spec = code / f"upper-{kind}-{parallelism}.json"
    spec.write_text(json.dumps({
        "pipeline": {"name": "upper"}, "parallelism_spec": {"constant": parallelism},
        "transform": transform, "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }))
    tusk = Tusk(work / f"tusk-{data.name}-{runtime}-{parallelism}-{kind}")
    tusk.env["TUSK_RUNTIME"] = runtime
    tusk.run("repo", "create", "in")
    tusk.run("put", "file", "in@master:/", "-r", "-f", str(data))
    first = tusk.run("pipeline", "create", "-f", str(spec))
    one = tusk.run("put", "file", "in@master:/f000007.txt", "-f", "-", stdin=b"changed record\n")
    noop = tusk.run("pipeline", "rerun", "upper")
    jobs = json.loads(subprocess.run([*TUSK_CMD, "job", "list", "-p", "upper", "--json"], env=tusk.env,
                                     capture_output=True, check=True).stdout)
    created, changed, rerun = list(reversed(jobs))  # oldest first
    assert all(j["state"] == "success" for j in jobs), jobs
    shutil.rmtree(tusk.home)
    return {"first_s": first, "first_job_s": _duration(created), "first_datums": created["datums_processed"],
            "one_change_s": one, "one_change_job_s": _duration(changed),
            "one_change_datums": changed["datums_processed"],
            "noop_s": noop, "noop_job_s": _duration(rerun), "noop_datums": rerun["datums_processed"]}


TUSK_CMD = [sys.executable, "-m", "tusk"]


def dvc_case(work: Path, dvc: Dvc, n: int) -> dict[str, float]:
    proj = dvc.project(work / f"dvc-{n}")
    make_files(proj / "data", n)
    (proj / "upper.py").write_text(WORK_SCRIPT)
    (proj / "dvc.yaml").write_text(
        "stages:\n  upper:\n    cmd: python3 upper.py data out\n    deps: [data, upper.py]\n    outs: [out]\n")
    first = dvc.run(proj, "repro", "-q")
    (proj / "data" / "f000007.txt").write_text("changed record\n")
    one = dvc.run(proj, "repro", "-q")
    noop = dvc.run(proj, "repro", "-q")
    return {"first_s": first, "first_datums": n, "one_change_s": one, "one_change_datums": n, "noop_s": noop,
            "noop_datums": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "pipelines")
    ap.add_argument("--no-dvc", action="store_true")
    args = ap.parse_args()
    small_n, big_n = (1_000, 2_000) if args.quick else (10_000, 20_000)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # DVC's venv beside --work (not inside it: the work directory is emptied first), its projects inside it
    dvc = None if args.no_dvc else Dvc(work.parent)
    small, big = work / "small", work / "big"
    make_files(small, small_n)
    make_files(big, big_n)
    sandbox = "bwrap" if shutil.which("bwrap") else "local"
    r: dict[str, dict[str, float]] = {}
    r["cp local p1"] = tusk_case(work, small, "local", 1, "cp")
    r["cp local p2"] = tusk_case(work, small, "local", 2, "cp")
    r[f"cp {sandbox} p2"] = tusk_case(work, small, sandbox, 2, "cp")
    r["python local p2"] = tusk_case(work, small, "local", 2, "python")
    r["cp batched local p2"] = tusk_case(work, small, "local", 2, "cp", batching=True)
    r["python batched local p2"] = tusk_case(work, small, "local", 2, "python", batching=True)
    r[f"python batched {sandbox} p2"] = tusk_case(work, small, sandbox, 2, "python", batching=True)
    r["python function local p2"] = tusk_case(work, small, "local", 2, "python", function=True)
    r[f"python function {sandbox} p2"] = tusk_case(work, small, sandbox, 2, "python", function=True)
    r["big cp local p2"] = tusk_case(work, big, "local", 2, "cp")
    if dvc:
        r["dvc small"] = dvc_case(work, dvc, small_n)
        r["dvc big"] = dvc_case(work, dvc, big_n)
    (work / "results.json").write_text(json.dumps({"dvc_version": dvc.version if dvc else None, **r}, indent=2))

    def line(label: str, x: dict[str, float], n: int, per_datum: bool = True) -> str:
        job = x.get("first_job_s", x["first_s"])
        per = f", {1000 * job / n:5.2f} ms/datum" if per_datum else ""
        return (f"  {label:<34} first job {job:7.2f} s ({int(x['first_datums'])} datums{per})"
                f" | 1 changed: job {x.get('one_change_job_s', x['one_change_s']):5.2f} s,"
                f" {int(x['one_change_datums'])} datums | no-op: job {x.get('noop_job_s', x['noop_s']):5.2f} s")

    print(f"\nTusk vs DVC {dvc.version if dvc else '(skipped)'}: same files, same per-file work")
    print(f"{small_n} tiny inputs; per-datum overhead measured with a trivial command (cp), target <= 5 ms/datum:")
    print(line("tusk, cp per datum, local, 1 worker", r["cp local p1"], small_n))
    print(line("tusk, cp per datum, local, 2 workers", r["cp local p2"], small_n))
    print(line(f"tusk, cp per datum, {sandbox}, 2 workers", r[f"cp {sandbox} p2"], small_n))
    print(line("tusk, python per datum, 2 workers", r["python local p2"], small_n))
    print("  with transform.datum_batching (one command per worker, fed by `pachctl next datum`):")
    print(line("tusk, cp batched, local, 2 workers", r["cp batched local p2"], small_n))
    print(line("tusk, python batched, local, 2 workers", r["python batched local p2"], small_n))
    print(line(f"tusk, python batched, {sandbox}, 2 workers", r[f"python batched {sandbox} p2"], small_n))
    print("  with transform.function (a module imported once per worker, its function called per datum):")
    print(line("tusk, python function, local, 2 workers", r["python function local p2"], small_n))
    print(line(f"tusk, python function, {sandbox}, 2 workers", r[f"python function {sandbox} p2"], small_n))
    if dvc:
        print(line("dvc repro, python over all files", r["dvc small"], small_n, per_datum=False))
    print(f"{big_n} inputs, one changes (target: exactly 1 datum, job < 1 s; DVC reruns the stage):")
    print(line("tusk, cp per datum, local, 2 workers", r["big cp local p2"], big_n))
    if dvc:
        print(line("dvc repro, python over all files", r["dvc big"], big_n, per_datum=False))
    print("  Tusk 'job' times are the job's own start-to-finish; whole CLI runs add ~0.6 s of start-up:")
    for k, x in r.items():
        if not k.startswith("dvc"):
            print(f"    {k:<18} wall: first {x['first_s']:6.2f} s, 1 changed {x['one_change_s']:5.2f} s,"
                  f" no-op {x['noop_s']:5.2f} s")
    print(f"\nraw figures: {work / 'results.json'}")


if __name__ == "__main__":
    main()
