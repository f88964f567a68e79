"""Model benchmark: what manifests and verified loading cost, against MLflow loading the same model.

    .venv/bin/python bench/models.py            # ~380 MB model, 100k-file data repo
    .venv/bin/python bench/models.py --quick    # ~38 MB, 10k files

(1) Manifest cost on commits. A commit of one small file to a data repo of N
    files (no model): the time the manifest listener adds (one tree diff). A
    commit of a model file of M bytes: the listener hashes it (BLAKE3, sha256,
    md5), compared with the whole commit.
(2) Loading the same scikit-learn model (a fitted KNeighborsClassifier, whose
    size is its training array):
    - Tusk `load_model`: chunks read from the store straight into one buffer,
      one BLAKE3 pass of the whole file against the manifest, then joblib's
      unpickler with the arrays left in that buffer (tusk.models.joblib_in_place);
    - MLflow `mlflow.pyfunc.load_model` on the same model saved by
      `mlflow.sklearn.save_model` (pickle; MLflow checks no hash);
    - plain `joblib.load` of a local file (the floor: no store, no check).
    Each load runs in a fresh process, as a server loads its model: the clock
    runs around the load alone (imports, opening the store and resolving the
    ref come before it). Five processes each, taken in turns; the median.
    Warm page cache. (Timed repeatedly in one process instead, a load reuses
    the pages the one before it freed, and what is measured is largely how
    much memory each load touches for the first time: on this machine's VM a
    first touch costs about 2.5 ms per MB, a page freed and reused almost
    nothing.) Target: a verified load within 1.5x `joblib.load` plus one
    BLAKE3 pass of the file (both measured in the same run).
"""

from __future__ import annotations

import argparse
import gc
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import joblib
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

import tusk
from tusk.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verdicts import Targets, compile_bytecode, load_text, section_with_retries


def median_time(fn: Callable[[], Any], runs: int = 5, collect: bool = False) -> float:
    """The median of ``runs`` timed calls; ``collect``: what each returned is freed, cycles too, untimed."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
        del result
        if collect:
            gc.collect()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (about 1.2 GB at full size)")
    args = ap.parse_args()
    compile_bytecode()  # as an installed Tusk has it (verdicts.compile_bytecode)
    work = Path(tempfile.mkdtemp(prefix="tusk-bench-models-"))
    try:
        run(work, args.quick)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, quick: bool) -> None:
    rows, files = (200_000, 10_000) if quick else (2_000_000, 100_000)
    client = tusk.Client(settings=Settings.for_home(work / "home", TUSK_RUNTIME="local"))
    models = client.services.models
    spent: list[float] = []
    listener = models.on_commit

    def timed(commit: Any, moved: bool = False) -> None:
        t = time.perf_counter()
        listener(commit, moved)
        spent.append(time.perf_counter() - t)

    models.on_commit = timed  # type: ignore[method-assign]  # Services._on_commit looks it up at each commit

    print(f"(1) manifest cost on commits ({work})   [{load_text()}]")
    data = work / "data"
    for i in range(files // 1000):
        d = data / f"d{i:03}"
        d.mkdir(parents=True)
        for j in range(1000):
            (d / f"f{j:04}.txt").write_text(f"{i} {j}\n")
    client.create_repo("data")
    client.put_file("data@master:/", data, recursive=True)
    spent.clear()
    t = time.perf_counter()
    client.put_file("data@master:/d000/new.txt", b"one more row\n")
    total = time.perf_counter() - t
    print(f"    one file into a {files:,}-file data repo: commit {total * 1000:.1f} ms, of which the manifest "
          f"listener {spent[-1] * 1000:.2f} ms (no model: one tree diff)")

    rng = np.random.default_rng(0)
    x = rng.random((rows, 10), dtype=np.float64)
    model = KNeighborsClassifier(n_neighbors=3).fit(x, (x[:, 0] > 0.5).astype(int))
    buf = io.BytesIO()
    joblib.dump(model, buf)
    blob = buf.getvalue()
    size_mb = len(blob) / 1e6
    client.create_repo("models")
    spent.clear()
    t = time.perf_counter()
    client.put_file("models@master:/model.joblib", blob)
    total = time.perf_counter() - t
    print(f"    a {size_mb:.0f} MB model file: commit {total:.2f} s, of which the manifest {spent[-1]:.2f} s "
          "(BLAKE3 + sha256 + md5 of every byte)")
    spent.clear()
    t = time.perf_counter()
    client.put_file("models@master:/metrics.json", b'{"accuracy": 0.9}')
    print(f"    then a metrics.json beside it: commit {(time.perf_counter() - t) * 1000:.1f} ms, manifest "
          f"{spent[-1] * 1000:.2f} ms (the model's hashes are reused, not recomputed)")

    local = work / "model.joblib"
    local.write_bytes(blob)

    def blake3_pass() -> None:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update(blob)
        h.digest()

    mlflow_dir = work / "mlflow-model"
    try:
        import mlflow.sklearn

        mlflow.sklearn.save_model(model, str(mlflow_dir),
                                  serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE)
    except ImportError:
        print("    (mlflow is not installed: pip install 'tusk[mlflow]')")
    loaders = {"joblib.load, local file, no check": ("joblib", local),
               "tusk load_model (store + manifest check)": ("tusk", work / "home")}
    if mlflow_dir.exists():
        loaders["mlflow.pyfunc.load_model (no check)"] = ("mlflow", mlflow_dir)

    def loads() -> dict[str, float]:
        times: dict[str, list[float]] = {name: [] for name in loaders}
        for _ in range(5):
            for name, (kind, where) in loaders.items():
                times[name].append(fresh_load(kind, where))
        results = {name: statistics.median(ts) for name, ts in times.items()}
        results["one BLAKE3 pass of the file (in memory)"] = median_time(blake3_pass)
        # the same loads repeated in this process, each model freed (its reference cycles too) before the next
        results["joblib.load again, in this process"] = median_time(lambda: joblib.load(local), collect=True)
        results["tusk load_model again, in this process"] = median_time(
            lambda: client.load_model("models@master"), collect=True)
        results["tusk verify_model (store + hashes, no load; in this process)"] = median_time(
            lambda: client.verify_model("models@master"))
        for name, seconds in results.items():
            spread = f"   (of {min(times[name]):.3f}-{max(times[name]):.3f})" if name in times else ""
            print(f"    {name:<62} {seconds:6.3f} s   {size_mb / seconds:7.0f} MB/s{spread}")
        return results

    results = section_with_retries(f"(2) loading the same {size_mb:.0f} MB scikit-learn model, each in a fresh "
                                   "process, median of 5", loads)
    joblib_s = results["joblib.load, local file, no check"]
    hash_s = results["one BLAKE3 pass of the file (in memory)"]
    targets = Targets()
    targets.at_most(f"verified load of a {size_mb:.0f} MB model", results["tusk load_model (store + manifest check)"],
                    f"joblib.load {joblib_s:.3f} s + BLAKE3 {hash_s:.3f} s", 1.5 * joblib_s + hash_s,
                    target=f"<= 1.5x joblib.load + one BLAKE3 pass = {1.5 * joblib_s + hash_s:.3f} s")
    if "mlflow.pyfunc.load_model (no check)" in results:
        mlflow_s = results["mlflow.pyfunc.load_model (no check)"]
        targets.at_most("verified load vs MLflow (which checks no hash)",
                        results["tusk load_model (store + manifest check)"], f"mlflow {mlflow_s:.3f} s",
                        mlflow_s, target="<= MLflow's unverified load")
    targets.print()
    client.close()


_FRESH_LOAD = """
import sys, time
kind, where = sys.argv[1], sys.argv[2]
import joblib, sklearn.neighbors
if kind == "joblib":
    t = time.perf_counter(); model = joblib.load(where)
elif kind == "mlflow":
    import mlflow.pyfunc
    t = time.perf_counter(); model = mlflow.pyfunc.load_model(where)
else:
    import tusk
    from tusk.config import Settings
    client = tusk.Client(settings=Settings.for_home(where, TUSK_RUNTIME="local"))
    client.model_manifest("models@master")  # the store opened and the ref resolved before the clock starts
    t = time.perf_counter(); model = client.load_model("models@master")
print(time.perf_counter() - t)
"""


def fresh_load(kind: str, where: Path) -> float:
    """Seconds one load took in a new process (its imports and set-up not counted)."""
    out = subprocess.run([sys.executable, "-c", _FRESH_LOAD, kind, str(where)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[-1])


if __name__ == "__main__":
    sys.exit(main())
