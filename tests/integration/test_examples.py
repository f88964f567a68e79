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
