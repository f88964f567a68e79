"""transform.datum_batching: one long-lived command per worker, fed each datum by `pachctl next datum`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tusk import Client
from tusk.config import Settings
from tusk.pipelines.runtimes import BwrapRuntime


def last_job(c: Client, pipeline: str) -> Any:
    return c.list_jobs(pipeline)[0]


def words(c: Client, n: int = 4) -> None:
    c.create_repo("text")
    for i in range(n):
        c.put_file(f"text@master:/{chr(97 + i)}.txt", b"w " * (i + 1) + b"\n")


# as Pachyderm's docs write it (docs.pachyderm.com, "Datum Batching", Bash): the loop never ends by itself
PACHYDERM_LOOP = [
    'transformation() {',
    '  for f in /pfs/text/*; do wc -w < $f > /pfs/out/$(basename $f).n; done',
    '  echo "Transformation function executed"',
    '}',
    'echo "Starting while loop"',
    'while true; do',
    '  pachctl next datum',
    '  echo "Next datum called"',
    '  transformation',
    'done',
]


def batched(name: str, stdin: list[str], **extra: Any) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "input": {"pfs": {"repo": "text", "glob": "/*"}},
            "transform": {"cmd": ["bash"], "stdin": stdin, "datum_batching": True}, **extra}


def test_same_outputs_and_counts_as_per_datum_processes_one_start_per_worker(pc: Client) -> None:
    words(pc)
    pc.create_pipeline(batched("wc", PACHYDERM_LOOP))
    pc.create_pipeline({"pipeline": {"name": "plain"}, "input": {"pfs": {"repo": "text", "glob": "/*"}},
                        "transform": {"cmd": ["sh"], "stdin": [
                            "for f in /pfs/text/*; do wc -w < $f > /pfs/out/$(basename $f).n; done"]}})
    job, plain = last_job(pc, "wc"), last_job(pc, "plain")
    assert (job.state, job.datums_total, job.datums_processed) == ("success", 4, 4)
    assert (plain.datums_total, plain.datums_processed) == (4, 4)
    for f in ("a", "b", "c", "d"):
        assert pc.get_file(f"wc@master:/{f}.txt.n") == pc.get_file(f"plain@master:/{f}.txt.n")
    logs = [d.log for d in pc.list_datums(job.id)]
    assert "".join(logs).count("Starting while loop") == 1  # started once (parallelism 1)
    assert all(log.count("Transformation function executed") == 1 for log in logs)  # each datum's own output
    pc.put_file("text@master:/e.txt", b"five\n")  # incremental: only the new datum goes to the command
    job = last_job(pc, "wc")
    assert (job.datums_processed, job.datums_skipped) == (1, 4)
    assert pc.get_file("wc@master:/e.txt.n") == b"1\n"


def test_one_command_per_worker_and_the_datum_env_file(pc: Client, tmp_path: Path) -> None:
    words(pc, 6)
    starts = tmp_path / "starts"
    pc.create_pipeline(batched("env", [
        f"echo started >> {starts}",
        "while pachctl next datum; do",
        "  set -a; . /pfs/.env; set +a",
        '  echo "$PACH_DATUM_ID $(basename $text) $PACH_JOB_ID" > /pfs/out/$(basename $text)',
        "done",
    ], parallelism_spec={"constant": 2}))
    job = last_job(pc, "env")
    assert (job.state, job.datums_processed) == ("success", 6)
    assert starts.read_text().count("started") == 2
    datums = {d.id: d for d in pc.list_datums(job.id)}
    for name in "abcdef":
        datum_id, base, job_id = pc.get_file(f"env@master:/{name}.txt").decode().split()
        assert base == f"{name}.txt" and datum_id in datums and job_id == job.id


def test_a_failing_datum_fails_only_itself(pc: Client) -> None:
    words(pc, 3)
    pc.create_pipeline(batched("fail", [
        "while pachctl next datum; do",
        '  while [ -e /pfs/text/b.txt ]; do pachctl next datum --error "b is bad" || exit 0; done',
        "  cp /pfs/text/* /pfs/out/",
        "done",
    ], datum_tries=2))
    job = last_job(pc, "fail")
    assert (job.state, job.datums_failed, job.datums_processed) == ("failure", 1, 2)
    failed = next(d for d in pc.list_datums(job.id) if d.state == "failed")
    assert failed.tries == 2 and "b is bad" in failed.log and "try 2/2 failed" in failed.log
    out = pc.inspect_commit(f"fail@{job.output_commit}")
    assert out.state == "failed"
    pc.create_pipeline(batched("crash", [
        "while pachctl next datum; do",
        "  [ -e /pfs/text/c.txt ] && exit 4",
        "  cp /pfs/text/* /pfs/out/",
        "done",
    ], datum_tries=1))
    job = last_job(pc, "crash")
    assert (job.datums_failed, job.datums_processed) == (1, 2)
    assert "exited with code 4" in (job.reason or "")


def test_sigkilled_command_retries_its_datum_and_redoes_nothing(pc: Client, tmp_path: Path) -> None:
    words(pc, 4)
    done, starts, mark = tmp_path / "done", tmp_path / "starts", tmp_path / "killed-once"
    pc.create_pipeline(batched("kill", [
        f"echo started >> {starts}",
        "while pachctl next datum; do",
        "  f=$(basename /pfs/text/*)",
        f'  if [ "$f" = b.txt ] && [ ! -e {mark} ]; then touch {mark}; kill -9 $$; fi',
        "  cp /pfs/text/$f /pfs/out/",
        f"  echo $f >> {done}",
        "done",
    ]))
    job = last_job(pc, "kill")
    assert (job.state, job.datums_processed) == ("success", 4)
    assert sorted(done.read_text().split()) == ["a.txt", "b.txt", "c.txt", "d.txt"]  # each once
    assert starts.read_text().count("started") == 2
    b = next(d for d in pc.list_datums(job.id) if d.tries == 2)
    assert "killed by signal 9" in b.log


def test_a_killed_relay_leaves_no_orphan_and_the_datum_is_retried(pc: Client, tmp_path: Path) -> None:
    words(pc, 2)
    mark, orphan = tmp_path / "killed-once", tmp_path / "orphan"
    pc.create_pipeline(batched("relay", [
        "while pachctl next datum; do",
        f"  if [ -e /pfs/text/b.txt ] && [ ! -e {mark} ]; then touch {mark}; kill -9 $PPID; sleep 2; "
        f"echo survived > {orphan}; fi",
        "  cp /pfs/text/* /pfs/out/",
        "done",
    ]))
    job = last_job(pc, "relay")
    assert (job.state, job.datums_processed) == ("success", 2)
    time.sleep(2.5)
    assert not orphan.exists()


def test_datum_timeout_kills_the_command_and_the_others_go_on(pc: Client) -> None:
    words(pc, 2)
    pc.create_pipeline(batched("slow", [
        "while pachctl next datum; do",
        "  [ -e /pfs/text/a.txt ] && sleep 30",
        "  cp /pfs/text/* /pfs/out/",
        "done",
    ], datum_tries=1, datum_timeout="1s"))
    job = last_job(pc, "slow")
    assert (job.datums_failed, job.datums_processed) == (1, 1)
    assert "timed out" in (job.reason or "")


def test_python_helper_and_only_next_datum(pc: Client, tmp_path: Path) -> None:
    words(pc, 3)
    code = tmp_path / "code"
    code.mkdir()
    # as Pachyderm's docs write it (Python), with Tusk's module for pachyderm_sdk's
    (code / "main.py").write_text(
        "import os, shutil\n"
        "from tusk.datum_batching import batch_all_datums\n"
        "\n"
        "@batch_all_datums\n"
        "def main():\n"
        "    print(f'datum processed: {os.environ[\"PACH_DATUM_ID\"]}')\n"
        "    if os.environ['text'].endswith('c.txt'):\n"
        "        raise ValueError('no c')\n"
        "    shutil.copy(os.environ['text'], os.path.join(os.environ.get('PFS', '/pfs'), 'out'))\n"
        "\n"
        "def init():\n"
        "    print('Preparing for datum batching job')\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    init()\n"
        "    print('Starting datum processing')\n"
        "    main()\n")
    (code / "py.json").write_text(json.dumps({
        "pipeline": {"name": "py"}, "input": {"pfs": {"repo": "text", "glob": "/*"}}, "datum_tries": 1,
        "transform": {"cmd": [sys.executable, "main.py"], "datum_batching": True}}))
    pc.create_pipeline(code / "py.json")
    job = last_job(pc, "py")
    assert (job.datums_processed, job.datums_failed) == (2, 1)
    datums = pc.list_datums(job.id)
    assert all(f"datum processed: {d.id}" in d.log for d in datums)
    failed = next(d for d in datums if d.state == "failed")
    assert "ValueError('no c')" in failed.log + (failed.error or "")
    assert "Preparing for datum batching job" in "".join(d.log for d in datums)
    pc.create_pipeline(batched("other", ["pachctl list repo"], datum_tries=1))
    job = last_job(pc, "other")
    datum = pc.list_datums(job.id)[0]
    assert job.state == "failure" and "offers only `pachctl next datum`" in datum.log


@pytest.mark.skipif(not BwrapRuntime.available(), reason="bubblewrap is not available")
def test_in_the_bwrap_sandbox(tmp_path: Path) -> None:
    with Client(settings=Settings.for_home(tmp_path / "home", TUSK_RUNTIME="bwrap")) as c:
        assert c.services.jobs.worker.runtime.name == "bwrap"
        words(c)
        c.create_pipeline(batched("wc", PACHYDERM_LOOP, parallelism_spec={"constant": 2}))
        job = last_job(c, "wc")
        assert (job.state, job.datums_processed) == ("success", 4), c.list_datums(job.id)[0].log
        assert c.get_file("wc@master:/d.txt.n") == b"4\n"
        logs = "".join(d.log for d in c.list_datums(job.id))
        assert logs.count("Starting while loop") == 2
        c.create_pipeline(batched("env", [
            "while pachctl next datum; do",
            "  set -a; . /pfs/.env; set +a",
            '  cp "$text" /pfs/out/ && echo "$PACH_DATUM_ID" > /pfs/out/$(basename $text).id',
            "done",
        ]))
        job = last_job(c, "env")
        assert (job.state, job.datums_processed) == ("success", 4)
        assert c.get_file("env@master:/a.txt") == b"w \n"
        ids = {d.id for d in c.list_datums(job.id)}
        assert c.get_file("env@master:/b.txt.id").decode().strip() in ids
        c.create_pipeline(batched("fail", [
            "while pachctl next datum; do",
            "  while [ -e /pfs/text/c.txt ]; do pachctl next datum --error nope || exit 0; done",
            "  cp /pfs/text/* /pfs/out/",
            "done",
        ], datum_tries=1))
        job = last_job(c, "fail")
        assert (job.datums_processed, job.datums_failed) == (3, 1)
        assert "nope" in next(d.log for d in c.list_datums(job.id) if d.state == "failed")


def test_the_spec_field_is_honoured_not_refused() -> None:
    from tusk.pipelines.spec import parse_spec
    from tusk.pipelines.support import check_supported, spec_notes

    spec = parse_spec(batched("wc", PACHYDERM_LOOP))
    check_supported(spec)
    assert spec.transform.datum_batching and spec_notes(spec) == []
