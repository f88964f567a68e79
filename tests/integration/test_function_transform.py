"""transform.function: ``module:function`` of the pipeline's code, imported once per worker and called per datum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tusk import Client
from tusk.config import Settings
from tusk.errors import InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime

SQUARE = '''\
import os, pathlib

STARTS = pathlib.Path(os.environ["STARTS"])
with STARTS.open("a") as fh:  # the module's top runs once per worker
    fh.write(f"{os.getpid()}\\n")
FACTOR = int(os.environ.get("FACTOR", "1"))


def square(datum):
    """Square the number in each input file: the datum's inputs and /pfs/out come with it."""
    src = pathlib.Path(datum.inputs["numbers"])
    n = int(src.read_text())
    if n == 13:
        raise ValueError("unlucky")
    pathlib.Path(datum.out, src.name).write_text(f"{n * n * FACTOR}\\n")
    print(f"squared {src.name} in {os.getpid()} for datum {datum.id}")


def from_env():
    """No argument: the datum's variables are in os.environ, as Pachyderm's workers set them."""
    src = pathlib.Path(os.environ["numbers"])
    pathlib.Path(os.environ.get("PFS", "/pfs"), "out", src.name).write_text(src.read_text())


def meet(datum):
    """Wait for the other worker's datum to be running too (MEET holds one file per datum that has begun)."""
    import time
    meeting = pathlib.Path(os.environ["MEET"])
    (meeting / datum.id).touch()
    deadline = time.monotonic() + 30
    while len(list(meeting.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other datum never ran beside this one")
        time.sleep(0.01)
    pathlib.Path(datum.out, datum.id).write_text("met\\n")


class Model:
    @staticmethod
    def score(datum):
        square(datum)
'''


def numbers(c: Client, values: list[int]) -> None:
    c.create_repo("numbers")
    with c.modify("numbers@master") as m:
        for i, n in enumerate(values):
            m.put_bytes(f"/n{i:02d}", f"{n}\n".encode())


def spec_file(code: Path, name: str, function: str, **extra: Any) -> Path:
    path = code / f"{name}.json"
    path.write_text(json.dumps({"pipeline": {"name": name}, "input": {"pfs": {"repo": "numbers", "glob": "/*"}},
                                "transform": {"function": function, "env": extra.pop("env", {})}, **extra}))
    return path


@pytest.fixture
def code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    (code / "lib" / "__init__.py").write_text("")
    (code / "lib" / "maths.py").write_text(SQUARE)
    return code


def test_same_outputs_and_counts_as_a_process_per_datum_and_one_import_per_worker(
        pc: Client, code: Path, tmp_path: Path) -> None:
    numbers(pc, [2, 3, 5, 7, 11, 17])
    starts = tmp_path / "starts"
    pc.create_pipeline(spec_file(code, "warm", "lib.maths:square", datum_tries=1, parallelism_spec={"constant": 2},
                                 env={"STARTS": str(starts)}))
    pc.create_pipeline({"pipeline": {"name": "cold"}, "input": {"pfs": {"repo": "numbers", "glob": "/*"}},
                        "datum_tries": 1, "transform": {"cmd": ["sh", "-c", (
                            'n=$(cat $numbers); [ "$n" != 13 ] && echo $((n * n)) > /pfs/out/$(basename $numbers)')]}})
    warm, cold = pc.list_jobs("warm")[0], pc.list_jobs("cold")[0]
    assert (warm.state, warm.datums_total, warm.datums_processed) == ("success", 6, 6)
    assert (cold.state, cold.datums_total, cold.datums_processed) == ("success", 6, 6)
    paths = [f.path for f in pc.walk_files("cold@master:/")]
    assert paths == [f.path for f in pc.walk_files("warm@master:/")] and len(paths) == 6
    assert all(pc.get_file(f"warm@master:{p}") == pc.get_file(f"cold@master:{p}") for p in paths)
    assert len(starts.read_text().split()) == 2  # imported once in each of the two workers, not once per datum
    assert all(f"for datum {d.id}" in d.log for d in pc.list_datums(warm.id))  # each datum's log is its own

    with pc.modify("numbers@master") as m:  # incremental, as for any pipeline: only the new datums run
        m.put_bytes("/n98", b"13\n")
        m.put_bytes("/n99", b"4\n")
    warm, cold = pc.list_jobs("warm")[0], pc.list_jobs("cold")[0]
    assert (warm.state, warm.datums_processed, warm.datums_skipped, warm.datums_failed) == ("failure", 1, 6, 1)
    assert (cold.datums_processed, cold.datums_skipped, cold.datums_failed) == (1, 6, 1)
    datums = pc.list_datums(warm.id)
    failed = next(d for d in datums if d.state == "failed")
    assert "ValueError: unlucky" in failed.log and "lib.maths:square raised ValueError: unlucky" in (failed.error or "")
    assert "unlucky" not in next(d for d in datums if d.state == "success").log  # the next datum's log is clean
    assert len(starts.read_text().split()) == 4  # a new job, two new workers (parallelism 2)


def test_no_argument_dotted_names_and_the_env(pc: Client, code: Path, tmp_path: Path) -> None:
    numbers(pc, [1, 2])
    env = {"STARTS": str(tmp_path / "starts"), "FACTOR": "10"}
    pc.create_pipeline(spec_file(code, "env", "lib.maths:from_env", env=env))
    pc.create_pipeline(spec_file(code, "method", "lib.maths:Model.score", env=env))
    assert pc.list_jobs("env")[0].state == "success"
    assert pc.get_file("env@master:/n01") == b"2\n"
    assert pc.get_file("method@master:/n01") == b"40\n"  # transform.env reaches the module


def test_a_function_that_cannot_be_imported_fails_its_datums_saying_why(pc: Client, code: Path, tmp_path: Path
                                                                        ) -> None:
    numbers(pc, [1])
    pc.create_pipeline(spec_file(code, "missing", "lib.maths:nothing_here", datum_tries=1,
                                 env={"STARTS": str(tmp_path / "starts")}))
    job = pc.list_jobs("missing")[0]
    assert job.state == "failure"
    (datum,) = pc.list_datums(job.id)
    assert "transform.function lib.maths:nothing_here: lib.maths has no nothing_here" in (datum.error or "")
    pc.create_pipeline(spec_file(code, "nomodule", "nope:f", datum_tries=1))
    (datum,) = pc.list_datums(pc.list_jobs("nomodule")[0].id)
    assert "cannot import nope from the pipeline's code: ModuleNotFoundError: No module named 'nope'" in (
        datum.error or "")
    (code / "broken.py").write_text("import os\n\nos.environ['NOT_SET']\n")
    pc.create_pipeline(spec_file(code, "broken", "broken:f", datum_tries=1))
    (datum,) = pc.list_datums(pc.list_jobs("broken")[0].id)
    assert 'broken.py", line 3' in datum.log and "KeyError: 'NOT_SET'" in (datum.error or "")  # its traceback
    assert str(code) not in datum.log + (datum.error or "")  # no server path


def test_a_sigkilled_worker_retries_its_datum_and_redoes_nothing(pc: Client, code: Path, tmp_path: Path) -> None:
    ran, mark = tmp_path / "ran", tmp_path / "killed-once"
    (code / "killer.py").write_text(
        "import os, pathlib, signal\n"
        "def run(datum):\n"
        "    src = pathlib.Path(datum.inputs['numbers'])\n"
        f"    ran, mark = pathlib.Path({str(ran)!r}), pathlib.Path({str(mark)!r})\n"
        "    with ran.open('a') as fh:\n"
        "        fh.write(f'{src.name} {os.getpid()}\\n')\n"
        "    if src.name == 'n02' and not mark.exists():\n"
        "        mark.touch()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    pathlib.Path(datum.out, src.name).write_text(src.read_text())\n")
    numbers(pc, [0, 1, 2, 3])
    pc.create_pipeline(spec_file(code, "killer", "killer:run"))
    job = pc.list_jobs("killer")[0]
    assert (job.state, job.datums_processed, job.datums_failed) == ("success", 4, 0), job.reason
    lines = [line.split() for line in ran.read_text().splitlines()]
    assert sorted(name for name, _ in lines) == ["n00", "n01", "n02", "n02", "n03"]  # n02 again; nothing else
    assert len({pid for name, pid in lines if name == "n02"}) == 2  # in a new worker process
    assert pc.get_file("killer@master:/n02") == b"2\n"
    retried = next(d for d in pc.list_datums(job.id) if d.tries == 2)
    assert "killed by signal 9" in retried.log


def test_the_spec_names_what_is_wrong() -> None:
    from tusk.pipelines.spec import parse_spec
    from tusk.pipelines.support import check_supported, spec_notes

    def spec(transform: dict[str, Any]) -> dict[str, Any]:
        return {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}}, "transform": transform}

    ok = parse_spec(spec({"function": "predict:score"}))
    check_supported(ok)
    assert ok.transform.batched and not ok.transform.datum_batching and spec_notes(ok) == []
    for transform, says in (
            ({"function": "predict.score"}, "must be MODULE:FUNCTION"),
            ({"function": "a/b:c"}, "must be MODULE:FUNCTION"),
            ({"function": "m:f", "cmd": ["python3"]}, "leave out cmd"),
            ({"function": "m:f", "stdin": ["x"], "image": "python:3.11"}, "leave out stdin and image")):
        with pytest.raises(InvalidArgument, match="invalid pipeline spec: transform") as info:
            parse_spec(spec(transform))
        assert says in str(info.value)


@pytest.mark.skipif(not BwrapRuntime.available(), reason="bubblewrap is not available")
def test_in_the_bwrap_sandbox(code: Path, tmp_path: Path) -> None:
    starts = tmp_path / "starts"  # outside the sandbox: the module's top writes into /tmp there instead
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap")) as c:
        numbers(c, [2, 3, 4])
        c.create_pipeline(spec_file(code, "warm", "lib.maths:square", env={"STARTS": "/tmp/starts"}))
        job = c.list_jobs("warm")[0]
        assert (job.state, job.datums_processed) == ("success", 3), c.list_datums(job.id)[0].log
        assert c.get_file("warm@master:/n02") == b"16\n"
        pids = {line.rsplit(" for ", 1)[0].split()[-1] for d in c.list_datums(job.id) for line in d.log.splitlines()
                if line.startswith("squared")}
        assert len(pids) == 1  # one process took the three datums
    assert not starts.exists()


def test_the_workers_code_runs_side_by_side_while_the_workers_take_turns(pc: Client, code: Path,
                                                                          tmp_path: Path) -> None:
    """A worker's threads take turns laying out /pfs and ingesting /pfs/out (tusk.pipelines.worker._turns),
    never while the user's code runs: with parallelism 2, two datums' code meet, warm and cold."""
    numbers(pc, [1, 2])
    warm, cold = tmp_path / "warm", tmp_path / "cold"
    warm.mkdir()
    cold.mkdir()
    pc.create_pipeline(spec_file(code, "warm", "lib.maths:meet", datum_tries=1, parallelism_spec={"constant": 2},
                                 env={"STARTS": str(tmp_path / "starts"), "MEET": str(warm)}))
    wait = (f"touch {cold}/$PACH_DATUM_ID; i=0; while [ $(ls {cold} | wc -l) -lt 2 ] && [ $i -lt 3000 ]; do "
            f"sleep 0.01; i=$((i+1)); done; [ $(ls {cold} | wc -l) -ge 2 ] && echo met > /pfs/out/$PACH_DATUM_ID")
    pc.create_pipeline({"pipeline": {"name": "cold"}, "input": {"pfs": {"repo": "numbers", "glob": "/*"}},
                        "datum_tries": 1, "parallelism_spec": {"constant": 2},
                        "transform": {"cmd": ["sh", "-c", wait]}})
    for name in ("warm", "cold"):
        job = pc.list_jobs(name)[0]
        assert (job.state, job.datums_processed) == ("success", 2), [d.error for d in pc.list_datums(job.id)]
        assert len(list(pc.walk_files(f"{name}@master:/"))) == 2
