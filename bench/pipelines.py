"""Pipeline benchmark: Tusk vs DVC `repro` on the same data and the same per-file work, and a table of targets.

    .venv/bin/python bench/pipelines.py            # 10k datums for overhead, 20k files for the change test
    .venv/bin/python bench/pipelines.py --quick    # 1k / 2k
    .venv/bin/python bench/pipelines.py --only big # only the cases whose name holds "big" (and DVC's "dvc big")

Per file, the work is the same tiny transformation (uppercase the text). Tusk
runs it per datum (glob /*), in a new process per datum as Pachyderm does;
DVC runs one stage whose command loops over every file in one process.
Measured: (1) per-datum overhead over N tiny datums, (2) time and datum count
when 1 of M input files changes, (3) a no-op run. Tusk times are whole CLI
invocations (`tusk put file` runs the triggered job inline); a job's own time is
its start-to-finish, and per-datum overhead is the first job's time / its datums.

Targets, each checked against a floor measured in the same run (the table ends the output):

- cp per datum: <= 1.5x the spawn floor of the runtime used: the median time to
  spawn and wait for `cp <small file> <dest>` (local), or the same cp in the
  sandbox argv Tusk's bwrap runtime builds (tusk.pipelines.sandbox.SandboxCommand);
- python per datum: <= 1.5x the spawn floor `python -c pass` (median of 20);
- transform.function (warm workers), local, 2 workers: <= 1 ms per datum;
- 1 of M inputs changed: exactly 1 datum processed, and the job <= 0.3 s (DVC `repro`
  of the same change shown beside it, when DVC runs); the same with the input crossed with a one-file model
  repo (`cross` of `in` /* and `model` /), as an inference pipeline has it.

Each case prints the machine's load before and after, and runs again (up to 3
times in all, from a fresh Tusk home) when the load was high (bench/verdicts.py).
DVC's venv is made beside --work (in its parent, shared with bench/ingest.py's
default), its projects inside --work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from ingest import Dvc, Tusk  # noqa: E402
from verdicts import Section, Targets, compile_bytecode, discard, section_with_retries  # noqa: E402

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
    discard(root)
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"f{i:06}.txt").write_text(f"record number {i}\n")


def _duration(job: dict[str, str]) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


def tusk_case(work: Path, data: Path, runtime: str, parallelism: int, work_kind: str,
              batching: bool = False, function: bool = False, cross: bool = False) -> dict[str, float]:
    """Create the pipeline on `data`, change one file, rerun with no change; wall and job times for each.

    ``batching``: the same work with ``transform.datum_batching`` (one command per worker, `pachctl next datum`).
    ``cross``: the input crossed with a repo holding one model file (glob ``/``).
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
    kind = f"{work_kind}{'-batched' if batching else ''}{'-function' if function else ''}{'-cross' if cross else ''}"
    spec = code / f"upper-{kind}-{parallelism}.json"
    inp: dict[str, object] = {"pfs": {"repo": "in", "glob": "/*"}}
    spec.write_text(json.dumps({
        "pipeline": {"name": "upper"}, "parallelism_spec": {"constant": parallelism}, "transform": transform,
        "input": {"cross": [inp, {"pfs": {"repo": "model", "glob": "/"}}]} if cross else inp,
    }))
    tusk = Tusk(work / f"tusk-{data.name}-{runtime}-{parallelism}-{kind}")
    tusk.env["TUSK_RUNTIME"] = runtime
    tusk.run("repo", "create", "in")
    if cross:
        tusk.run("repo", "create", "model")
        tusk.run("put", "file", "model@master:/model.bin", "-f", "-", stdin=b"weights\n")
    tusk.run("put", "file", "in@master:/", "-r", "-f", str(data))
    first = tusk.run("pipeline", "create", "-f", str(spec))
    one = tusk.run("put", "file", "in@master:/f000007.txt", "-f", "-", stdin=b"changed record\n")
    noop = tusk.run("pipeline", "rerun", "upper")
    jobs = json.loads(subprocess.run([*TUSK_CMD, "job", "list", "-p", "upper", "--json"], env=tusk.env,
                                     capture_output=True, check=True).stdout)
    created, changed, rerun = list(reversed(jobs))  # oldest first
    assert all(j["state"] == "success" for j in jobs), jobs
    discard(tusk.home)
    return {"first_s": first, "first_job_s": _duration(created), "first_datums": created["datums_processed"],
            "one_change_s": one, "one_change_job_s": _duration(changed),
            "one_change_datums": changed["datums_processed"],
            "noop_s": noop, "noop_job_s": _duration(rerun), "noop_datums": rerun["datums_processed"]}


TUSK_CMD = [sys.executable, "-m", "tusk"]


def _spawn(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Spawn and wait for one program as the runtimes do (own session, output piped), seconds."""
    t = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"spawn floor: {argv[0]} failed ({proc.returncode}): {out.decode(errors='replace')[-800:]}")
    return elapsed


def spawn_floors(work: Path, sandbox: str, n: int = 50) -> dict[str, float]:
    """The floors of per-datum work, in seconds: median time to spawn and wait for ``cp`` of a tiny file (local),
    the same ``cp`` in the argv Tusk's bwrap runtime builds (inputs read-only at /pfs/in, /pfs/out writable), and
    ``python -c pass`` (median of 20)."""
    floor = work / "floor"
    discard(floor)
    (floor / "in").mkdir(parents=True)
    (floor / "out").mkdir()
    (floor / "out-sandbox").mkdir()  # the local cp's copy is root's: the sandbox, as root, writes as nobody
    (floor / "in" / "f.txt").write_text("record number 7\n")
    cp = shutil.which("cp") or "cp"
    env = dict(os.environ)
    floors = {"spawn_cp_local_s": statistics.median(
        _spawn([cp, str(floor / "in" / "f.txt"), str(floor / "out" / "f.txt")]) for _ in range(n))}
    floors["spawn_python_s"] = statistics.median(_spawn([sys.executable, "-c", "pass"], env) for _ in range(20))
    if sandbox == "bwrap":
        argv, how = _bwrap_argv(floor, cp)
        floors["spawn_cp_bwrap_s"] = statistics.median(_spawn(argv, {"PATH": os.defpath, "HOME": "/tmp"})
                                                       for _ in range(n))
        print(f"    bwrap floor: {how}", flush=True)
    discard(floor)
    return floors


def _bwrap_argv(floor: Path, cp: str) -> tuple[list[str], str]:
    """The argv of one cp in the sandbox, built as the bwrap runtime builds it; a minimal bwrap if that fails."""
    try:
        from tusk.pipelines.sandbox import Mount, SandboxCommand

        found = SandboxCommand.find()
        assert found is not None
        found.prepare_writable(floor / "out-sandbox")  # as root, the sandbox writes as an unprivileged uid
        argv = found.argv([cp, "/pfs/in/f.txt", "/pfs/out/"],
                          [Mount(floor / "in", "/pfs/in"), Mount(floor / "out-sandbox", "/pfs/out", writable=True)],
                          "/tmp", (0, 0), ["--dir", "/pfs"])
        return argv, f"Tusk's sandbox argv ({'privileged: bwrap, setpriv, bwrap' if found.privileged else 'bwrap'})"
    except Exception as exc:  # tusk's sandbox API changed or is unusable here: the plainest bwrap instead
        out = str(floor / "out-sandbox")
        argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", out, out,
                "--unshare-pid", "--", cp, str(floor / "in" / "f.txt"), out]
        return argv, f"minimal bwrap --ro-bind / / (Tusk's sandbox argv failed: {exc!r})"


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
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="run only the cases whose name holds TEXT (repeatable); the table checks those")
    args = ap.parse_args()

    def chosen(key: str) -> bool:
        return not args.only or any(text in key for text in args.only)

    compile_bytecode()  # as an installed Tusk has it (verdicts.compile_bytecode)
    small_n, big_n = (1_000, 2_000) if args.quick else (10_000, 20_000)
    work = args.work
    discard(work)
    work.mkdir(parents=True)
    # DVC's venv beside --work (not inside it: the work directory is emptied first), its projects inside it
    dvc = None if args.no_dvc else Dvc(work.parent)
    small, big = work / "small", work / "big"
    make_files(small, small_n)
    make_files(big, big_n)
    sandbox = "bwrap" if shutil.which("bwrap") else "local"
    floors = section_with_retries("spawn floors (cp local, cp in the sandbox, python -c pass)",
                                  lambda: spawn_floors(work, sandbox))
    r: dict[str, dict[str, float]] = {}

    def case(key: str, data: Path, runtime: str, parallelism: int, work_kind: str, **kw: bool) -> None:
        if not chosen(key):
            return
        r[key] = section_with_retries(f"tusk: {key} ({len(os.listdir(data)):,} inputs)",
                                      lambda: tusk_case(work, data, runtime, parallelism, work_kind, **kw))

    case("cp local p1", small, "local", 1, "cp")
    case("cp local p2", small, "local", 2, "cp")
    case(f"cp {sandbox} p2", small, sandbox, 2, "cp")
    case("python local p2", small, "local", 2, "python")
    case("cp batched local p2", small, "local", 2, "cp", batching=True)
    case("python batched local p2", small, "local", 2, "python", batching=True)
    case(f"python batched {sandbox} p2", small, sandbox, 2, "python", batching=True)
    case("python function local p2", small, "local", 2, "python", function=True)
    case(f"python function {sandbox} p2", small, sandbox, 2, "python", function=True)
    case("big cp local p2", big, "local", 2, "cp")
    case("big cross cp local p2", big, "local", 2, "cp", cross=True)
    if dvc:
        for key, n in (("dvc small", small_n), ("dvc big", big_n)):
            if not chosen(key):
                continue
            with Section(f"dvc repro: {n:,} inputs"):
                r[key] = dvc_case(work, dvc, n)
    (work / "results.json").write_text(json.dumps({"dvc_version": dvc.version if dvc else None, "floors": floors,
                                                   **r}, indent=2))

    def line(label: str, x: dict[str, float] | None, n: int, per_datum: bool = True) -> str:
        if x is None:
            return f"  {label:<40} (not run)"
        job = x.get("first_job_s", x["first_s"])
        per = f", {1000 * job / n:5.2f} ms/datum" if per_datum else ""
        return (f"  {label:<40} first job {job:7.2f} s ({int(x['first_datums'])} datums{per})"
                f" | 1 changed: job {x.get('one_change_job_s', x['one_change_s']):5.2f} s,"
                f" {int(x['one_change_datums'])} datums | no-op: job {x.get('noop_job_s', x['noop_s']):5.2f} s")

    print(f"\nTusk vs DVC {dvc.version if dvc else '(skipped)'}: same files, same per-file work")
    print(f"spawn floors: cp (local) {1000 * floors['spawn_cp_local_s']:.2f} ms"
          + (f", cp in the bwrap sandbox {1000 * floors['spawn_cp_bwrap_s']:.2f} ms" if "spawn_cp_bwrap_s" in floors
             else "") + f", python -c pass {1000 * floors['spawn_python_s']:.2f} ms")
    print(f"{small_n} tiny inputs; per-datum overhead measured with a trivial command (cp):")
    print(line("tusk, cp per datum, local, 1 worker", r.get("cp local p1"), small_n))
    print(line("tusk, cp per datum, local, 2 workers", r.get("cp local p2"), small_n))
    print(line(f"tusk, cp per datum, {sandbox}, 2 workers", r.get(f"cp {sandbox} p2"), small_n))
    print(line("tusk, python per datum, 2 workers", r.get("python local p2"), small_n))
    print("  with transform.datum_batching (one command per worker, fed by `pachctl next datum`):")
    print(line("tusk, cp batched, local, 2 workers", r.get("cp batched local p2"), small_n))
    print(line("tusk, python batched, local, 2 workers", r.get("python batched local p2"), small_n))
    print(line(f"tusk, python batched, {sandbox}, 2 workers", r.get(f"python batched {sandbox} p2"), small_n))
    print("  with transform.function (a module imported once per worker, its function called per datum):")
    print(line("tusk, python function, local, 2 workers", r.get("python function local p2"), small_n))
    print(line(f"tusk, python function, {sandbox}, 2 workers", r.get(f"python function {sandbox} p2"), small_n))
    if dvc:
        print(line("dvc repro, python over all files", r.get("dvc small"), small_n, per_datum=False))
    print(f"{big_n} inputs, one changes (DVC reruns the stage):")
    print(line("tusk, cp per datum, local, 2 workers", r.get("big cp local p2"), big_n))
    print(line("tusk, the same crossed with a model repo", r.get("big cross cp local p2"), big_n))
    if dvc:
        print(line("dvc repro, python over all files", r.get("dvc big"), big_n, per_datum=False))
    print("  Tusk 'job' times are the job's own start-to-finish; whole CLI runs add the CLI's start-up:")
    for k, x in r.items():
        if not k.startswith("dvc"):
            print(f"    {k:<26} wall: first {x['first_s']:6.2f} s, 1 changed {x['one_change_s']:5.2f} s,"
                  f" no-op {x['noop_s']:5.2f} s")
    targets(r, floors, sandbox, small_n, big_n, dvc.version if dvc else None)
    print(f"\nraw figures: {work / 'results.json'}")


def targets(r: dict[str, dict[str, float]], floors: dict[str, float], sandbox: str, small_n: int, big_n: int,
            dvc_version: str | None) -> None:
    def per_datum(key: str) -> float:  # seconds per datum of the first job
        return r[key]["first_job_s"] / r[key]["first_datums"]

    def ms(v: float) -> str:
        return f"{1000 * v:.2f} ms"

    t = Targets()
    local, python = floors["spawn_cp_local_s"], floors["spawn_python_s"]
    sandboxed = floors.get(f"spawn_cp_{sandbox}_s", local)
    for key, floor, what in (("cp local p1", local, "spawn cp"), ("cp local p2", local, "spawn cp"),
                             (f"cp {sandbox} p2", sandboxed, f"spawn cp ({sandbox})"),
                             ("python local p2", python, "spawn python -c pass")):
        if key not in r:
            continue
        t.at_most(f"{key}: per datum", per_datum(key), f"{what} {ms(floor)}", 1.5 * floor, unit="ms", scale=1000,
                  target=f"<= 1.5x the floor ({ms(1.5 * floor)})")
    if "python function local p2" in r:
        t.at_most("python function local p2: per datum", per_datum("python function local p2"),
                  "warm workers, no spawn", 0.001, unit="ms", scale=1000)
    dvc = r.get("dvc big")
    for key, what in (("big cp local p2", ""), ("big cross cp local p2", ", crossed with a model")):
        if key not in r:
            continue
        big = r[key]
        t.equal(f"1 of {big_n:,} changed{what}: datums processed", big["one_change_datums"], 1)
        t.at_most(f"1 of {big_n:,} changed{what}: job", big["one_change_job_s"],
                  f"dvc repro {dvc['one_change_s']:.3f} s ({int(dvc['one_change_datums']):,} files)" if dvc
                  else "dvc repro (skipped)", 0.3)
    t.print(f"targets ({small_n:,} tiny inputs for the overhead; DVC {dvc_version or '(skipped)'}; floors measured "
            "in this run)")


if __name__ == "__main__":
    main()
