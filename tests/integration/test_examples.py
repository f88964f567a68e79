"""The Pachyderm-style examples in examples/, run through the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def tusk(home: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSK_")} | {"TUSK_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "tusk", *args], input=stdin, capture_output=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def job_counts(home: Path, pipeline: str) -> tuple[int, int, int]:
    import json

    job = json.loads(tusk(home, "list", "job", "-p", pipeline, "--json"))[0]
    assert job["state"] == "success", job
    return job["datums_total"], job["datums_processed"], job["datums_skipped"]


def test_wordcount_example(tmp_path: Path) -> None:
    home, docs = tmp_path / "home", tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("the cat sat on the mat\n")
    (docs / "b.txt").write_text("The dog ate the cat's dinner\n")
    tusk(home, "create", "repo", "data")
    tusk(home, "put", "file", "data@master:/", "-r", "-f", str(docs))
    tusk(home, "create", "pipeline", "-f", str(EXAMPLES / "wordcount" / "map.json"))
    tusk(home, "create", "pipeline", "-f", str(EXAMPLES / "wordcount" / "reduce.json"))
    counts = dict(line.split("\t") for line in tusk(home, "get", "file", "reduce@master:/counts.tsv").splitlines())
    assert counts["the"] == "4" and counts["cat"] == "1" and counts["cat's"] == "1"
    tusk(home, "put", "file", "data@master:/c.txt", "-f", "-", stdin=b"the end\n")
    assert job_counts(home, "map") == (3, 1, 2)
    counts = dict(line.split("\t") for line in tusk(home, "get", "file", "reduce@master:/counts.tsv").splitlines())
    assert counts["the"] == "5" and counts["end"] == "1"
    assert "reduce" in tusk(home, "lineage", "reduce@master")


def test_edges_montage_example(tmp_path: Path) -> None:
    home, imgs = tmp_path / "home", tmp_path / "imgs"
    subprocess.run([sys.executable, str(EXAMPLES / "images" / "make_images.py"), str(imgs), "3"], check=True)
    tusk(home, "create", "repo", "images")
    tusk(home, "put", "file", "images@master:/", "-r", "-f", str(imgs))
    tusk(home, "create", "pipeline", "-f", str(EXAMPLES / "images" / "edges.json"))
    tusk(home, "create", "pipeline", "-f", str(EXAMPLES / "images" / "montage.json"))
    assert job_counts(home, "edges") == (3, 3, 0)
    montage = tusk(home, "inspect", "file", "montage@master:/montage.pgm", "--json")
    assert '"size_bytes": ' in montage
    header = subprocess.run([sys.executable, "-m", "tusk", "get", "file", "montage@master:/montage.pgm"],
                            capture_output=True, env={**os.environ, "TUSK_HOME": str(home)}, check=True).stdout
    assert header.startswith(b"P5 100 144 255\n")  # 3 images of 48x48, each beside its edges (+4 px gap)
    extra = imgs / "image0.pgm"
    tusk(home, "put", "file", "images@master:/extra.pgm", "-f", str(extra))
    assert job_counts(home, "edges") == (4, 1, 3)
    assert job_counts(home, "montage") == (1, 1, 0)


def test_diabetes_workshop_example(tmp_path: Path) -> None:
    """The README of examples/diabetes, step by step: train, predict, add one file, switch to multiple regression."""
    import json

    home, data = tmp_path / "home", tmp_path / "data"
    here = EXAMPLES / "diabetes"
    subprocess.run([sys.executable, str(here / "make_data.py"), str(data)], check=True)
    tusk(home, "create", "repo", "training")
    tusk(home, "create", "repo", "attributes")
    tusk(home, "put", "file", "training@master:/diabetes.csv", "-f", str(data / "training" / "diabetes.csv"))
    tusk(home, "create", "pipeline", "-f", str(here / "model.json"))
    simple = json.loads(tusk(home, "model", "inspect", "model@master", "--json"))
    assert [m["flavor"] for m in simple["models"]] == ["joblib"]
    assert simple["metrics"]["/metrics.json"]["features"] == ["bmi"]
    assert simple["training"]["pipeline"] == "model"
    assert simple["training"]["sources"][0]["repo"] == "training"
    tusk(home, "put", "file", "attributes@master:/", "-r", "-f", str(data / "attributes"))
    tusk(home, "create", "pipeline", "-f", str(here / "predict.json"))
    assert job_counts(home, "predict") == (4, 4, 0)
    first = {n: tusk(home, "get", "file", f"predict@master:/{n}.csv") for n in range(1, 5)}
    assert all(len(v.splitlines()) == 11 for v in first.values())  # header + one prediction per patient

    tusk(home, "put", "file", "attributes@master:/5.csv", "-f", str(data / "new-attributes" / "5.csv"))
    assert job_counts(home, "predict") == (5, 1, 4)  # one new attribute file: one datum

    tusk(home, "pipeline", "update", "-f", str(here / "model-multiple.json"))  # exercise 3
    assert job_counts(home, "model") == (1, 1, 0)
    assert job_counts(home, "predict") == (5, 5, 0)  # the model changed: every prediction is recomputed
    multiple = json.loads(tusk(home, "model", "inspect", "model@master", "--json"))
    assert len(multiple["metrics"]["/metrics.json"]["features"]) == 10
    assert multiple["metrics"]["/metrics.json"]["r2"] > simple["metrics"]["/metrics.json"]["r2"]
    assert tusk(home, "get", "file", "predict@master:/1.csv") != first[1]
    trace = json.loads(tusk(home, "lineage", "predict@master:/1.csv", "--json"))
    assert {i["repo"] for i in trace["datum"]["inputs"]} == {"attributes", "model"}
    model_node = next(n for n in trace["upstream"]["inputs"] if n["repo"] == "model")
    assert model_node["commit"] == multiple["commit"]
    assert model_node["inputs"][0]["repo"] == "training"
    models = json.loads(tusk(home, "model", "list", "model", "--json"))
    assert len(models) == 2 and models[0]["aliases"] == ["master"]
