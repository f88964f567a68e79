"""`tusk gc`: what is referenced stays, what is not goes, and writers running meanwhile lose nothing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import Backend
from tusk import Client
from tusk.errors import Conflict, ObjectMissing
from tusk.storage.metadata import ChunkIndexRow
from tusk.versioning import fence

TUSK = [sys.executable, "-m", "tusk"]


def _store_bytes(client: Client) -> int:
    """Every byte the object store holds, leftovers of unfinished writes included."""
    objects = client.services.ctx.objects
    return sum(s.size for s in objects.scan("")) + sum(s.size for s in objects.scan_temporary())


def _put_dataset(client: Client, repo: str, tmp: Path, seed: int, big: int = 3 << 20, small: int = 200) -> None:
    """A large file (loose chunks), many small files (packs), nested directories (trees)."""
    rng = random.Random(seed)
    src = tmp / f"{repo}-{seed}"
    for i in range(small):
        path = src / f"d{i % 7}" / f"s{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(50, 3000)))
    client.put_file(f"{repo}@master:/small", src, recursive=True)
    client.put_file(f"{repo}@master:/big.bin", rng.randbytes(big))


def test_repo_delete_then_gc_returns_the_store_to_its_size(client: Client, tmp_path: Path) -> None:
    client.create_repo("keep")
    _put_dataset(client, "keep", tmp_path, 1)
    keep_files = {f.path: client.get_file(f"keep@master:{f.path}") for f in client.walk_files("keep@master")}
    client.gc(grace=0)
    before = _store_bytes(client)

    client.create_repo("scratch")
    _put_dataset(client, "scratch", tmp_path, 2, big=8 << 20, small=400)
    _put_dataset(client, "scratch", tmp_path, 3)  # a second commit: overwritten files
    client.put_file("scratch@master:/dup.bin", keep_files["/big.bin"])  # shares keep's chunks
    grown = _store_bytes(client)
    assert grown > before + (10 << 20)

    client.delete_repo("scratch")
    dry = client.gc(dry_run=True, grace=0)
    assert dry.dry_run and dry.bytes_swept > 10 << 20
    assert _store_bytes(client) == grown  # a dry run deletes nothing

    report = client.gc(grace=0)
    after = _store_bytes(client)
    print(f"store bytes: before the repo {before}, with it {grown}, after delete + gc {after}; swept"
          f" {report.bytes_swept} in {report.objects_swept} objects ({report.packs_rewritten} packs rewritten)")
    assert abs(after - before) <= before * 0.01, (before, grown, after, report)
    assert report.bytes_swept >= grown - after - 4096
    for path, data in keep_files.items():
        assert client.get_file(f"keep@master:{path}") == data
    fsck = client.fsck()
    assert fsck.ok, fsck.problems


def test_old_chunks_stay_while_a_commit_refers_to_them(client: Client) -> None:
    client.create_repo("r")
    old = os.urandom(2 << 20)
    client.put_file("r@master:/f", old)
    first = client.inspect_commit("r@master").id
    client.put_file("r@master:/f", os.urandom(2 << 20))  # overwritten: the old chunks are history now
    second = client.inspect_commit("r@master").id
    client.gc(grace=0)
    assert client.get_file(f"r@{first}:/f") == old

    client.delete_commit(f"r@{second}")  # the head goes back to the first commit: the new chunks are garbage
    client.put_file("r@master:/g", b"small")
    size = _store_bytes(client)
    report = client.gc(grace=0)
    assert report.bytes_swept >= 2 << 20
    assert _store_bytes(client) <= size - (2 << 20)
    assert client.get_file("r@master:/f") == old
    assert client.fsck().ok


def test_young_garbage_is_kept_for_the_grace_period(client: Client) -> None:
    objects = client.services.ctx.objects
    client.create_repo("r")
    # a put that never lands: its chunks are written, nothing refers to them
    with pytest.raises(RuntimeError), client.modify("r@master") as mod:
        mod.put_bytes("/lost", os.urandom(3 << 20))
        raise RuntimeError("interrupted")
    loose = [k for k in objects.list("chunks/")]
    assert loose
    kept = client.gc(grace=3600)
    assert kept.objects_swept == 0 and kept.objects_young == len(loose) and kept.bytes_young >= 3 << 20
    assert sorted(objects.list("chunks/")) == sorted(loose)
    time.sleep(1.5)
    swept = client.gc(grace=1)
    assert swept.objects_swept == len(loose) and swept.bytes_swept >= 3 << 20
    assert list(objects.list("chunks/")) == []


def test_an_interrupted_cli_put_is_reclaimed_after_the_grace_period(backend: Backend) -> None:
    client = backend.client()
    try:
        client.create_repo("r")
        client.put_file("r@master:/keep", b"keep")
        baseline = _store_bytes(client)
        proc = subprocess.Popen([*TUSK, "put", "file", "r@master:/big", "-f", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=backend.subprocess_env())
        assert proc.stdin is not None
        block = os.urandom(1 << 20)
        for _ in range(16):
            proc.stdin.write(block + os.urandom(64))
        proc.stdin.flush()
        deadline = time.monotonic() + 60  # the CLI starts and writes at the machine's pace: wait for its chunks
        while _store_bytes(client) - baseline <= 4 << 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # Ctrl-C's harsher sibling: nothing gets to clean up
        proc.wait()
        proc.stdin.close()
        left = _store_bytes(client) - baseline
        assert left > 4 << 20
        assert client.gc(grace=3600).bytes_swept == 0
        time.sleep(1.5)
        report = client.gc(grace=1)
        assert report.bytes_swept >= left
        assert _store_bytes(client) == baseline
        assert client.get_file("r@master:/keep") == b"keep"
    finally:
        client.close()


def test_a_partly_live_pack_is_rewritten(client: Client, tmp_path: Path) -> None:
    src = tmp_path / "small"
    src.mkdir()
    for i in range(100):
        (src / f"f{i}").write_bytes(os.urandom(4000))
    client.create_repo("r")
    client.put_file("r@master:/a", src, recursive=True)
    packs = list(client.services.ctx.objects.list("packs/"))
    assert len(packs) == 1
    keep = {f"f{i}": (src / f"f{i}").read_bytes() for i in range(0, 100, 10)}
    with client.modify("r@master") as mod:  # 90 of the 100 packed files go
        for i in range(100):
            if f"f{i}" not in keep:
                mod.delete(f"/a/f{i}")
    first = client.list_commits("r")[-1].id
    client.squash_commit(f"r@{first}")  # the first commit leaves history: the files deleted since are garbage
    report = client.gc(grace=0)
    assert report.packs_rewritten == 1 and report.bytes_swept >= 80 * 4000
    assert list(client.services.ctx.objects.list("packs/")) == []
    for name, data in keep.items():
        assert client.get_file(f"r@master:/a/{name}") == data
    with client.services.ctx.db.read() as s:
        assert s.query(ChunkIndexRow).count() == 0  # no put may dedup into the deleted pack
    assert client.fsck().ok
    client.put_file("r@master:/again", src, recursive=True)  # the same bytes again: a new pack
    assert client.get_file("r@master:/again/f5") == (src / "f5").read_bytes()


def test_pipeline_code_is_kept_while_a_version_refers_to_it(pc: Client, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "copy.py").write_text(
        "import os, shutil, pathlib\n"
        "src = pathlib.Path(os.environ['words'])\n"
        "shutil.copy(src, pathlib.Path(os.environ.get('TUSK_PFS', '/pfs'), 'out', src.name))\n")
    (code / "blob.bin").write_bytes(os.urandom(1 << 20))  # code with some weight
    spec = code / "spec.json"
    spec.write_text(json.dumps({"pipeline": {"name": "copy"}, "transform": {"cmd": ["python3", "copy.py"]},
                                "input": {"pfs": {"repo": "words", "glob": "/*"}}, "datum_tries": 1}))
    pc.create_repo("words")
    pc.put_file("words@master:/a", b"hello")
    info = pc.create_pipeline(spec)[0]
    tree = info.code["tree"]  # type: ignore[index]
    pc.gc(grace=0)
    assert pc.services.pipelines.code.has(tree)
    pc.put_file("words@master:/b", b"world")
    assert pc.get_file("copy@master:/b") == b"world"  # the stored code still runs
    size = _store_bytes(pc)
    pc.delete_pipeline("copy")
    pc.delete_repo("words")
    report = pc.gc(grace=0)
    assert report.bytes_swept >= 1 << 20
    assert _store_bytes(pc) <= size - (1 << 20)
    pc.services.pipelines.code._present.clear()
    assert not pc.services.pipelines.code.has(tree)


def test_one_gc_at_a_time(client: Client) -> None:
    ctx = client.services.ctx
    fence.begin_sweep(ctx, "someone-else", 30)
    try:
        with pytest.raises(Conflict, match="already running"):
            client.gc(grace=0)
        assert client.gc(dry_run=True, grace=0).dry_run  # a dry run deletes nothing: it needs no fence
    finally:
        fence.end_sweep(ctx, "someone-else")
    client.gc(grace=0)


def test_a_write_that_overlaps_a_gc_is_checked_before_it_lands(client: Client) -> None:
    """The fence: a put whose reused chunk a gc deleted meanwhile fails, naming it, and lands nothing."""
    client.create_repo("r")
    data = os.urandom(1 << 20)
    with pytest.raises(RuntimeError), client.modify("r@master") as mod:
        mod.put_bytes("/x", data)  # stored, never landed: garbage
        raise RuntimeError
    mod = client.modify("r@master")
    mod.put_bytes("/x", data)  # dedups the garbage chunk...
    client.gc(grace=0)  # ...which a gc deletes before the put lands
    with pytest.raises(ObjectMissing, match="deleted by a `tusk gc`"):
        mod.land()
    assert client.list_commits("r") == []
    client.put_file("r@master:/x", data)  # the next put writes it again
    assert client.get_file("r@master:/x") == data


def test_cli_gc(backend: Backend) -> None:
    env = backend.subprocess_env()
    subprocess.run([*TUSK, "repo", "create", "r"], env=env, check=True, capture_output=True)
    subprocess.run([*TUSK, "put", "file", "r@master:/f", "-f", "-"], input=os.urandom(1 << 20), env=env, check=True,
                   capture_output=True)
    subprocess.run([*TUSK, "repo", "delete", "r"], env=env, check=True, capture_output=True)
    dry = subprocess.run([*TUSK, "gc", "--dry-run", "--grace", "0s", "--json"], env=env, check=True,
                         capture_output=True, text=True)
    assert json.loads(dry.stdout)["dry_run"] is True and json.loads(dry.stdout)["bytes_swept"] >= 1 << 20
    done = subprocess.run([*TUSK, "gc", "--grace", "0s"], env=env, check=True, capture_output=True, text=True)
    assert "reclaimed" in done.stdout
    bad = subprocess.run([*TUSK, "gc", "--grace", "soon"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "--grace" in bad.stderr


# -- gc while writers run and die --------------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import os, random, sys, hashlib
    from tusk import Client
    from tusk.errors import TuskError
    me, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    pool = [random.Random(k).randbytes(random.Random(k).randint(600_000, 1_500_000)) for k in range(6)]
    client = Client()
    repo = f"w{me}"
    client.create_repo(repo)
    n = 0
    while True:
        n += 1
        files = {f"/big{n % 3}": rng.choice(pool) + rng.randbytes(rng.randint(0, 3000))}
        smalls = [(f"/s/{n}-{i}", rng.choice([b"shared-%d" % (i % 5), rng.randbytes(rng.randint(10, 900))]))
                  for i in range(rng.randint(0, 20))]
        try:
            with client.modify(f"{repo}@master") as mod:
                for path, data in files.items():
                    mod.put_bytes(path, data)
                mod.put_small(smalls)
            head = client.inspect_commit(f"{repo}@master").id
        except TuskError as exc:
            print("FAILED", type(exc).__name__, str(exc)[:200], flush=True)
            continue
        for path, data in [*files.items(), *smalls]:
            print("LANDED", repo, head, path, hashlib.sha256(data).hexdigest(), flush=True)
        if n % 4 == 0:  # garbage for the gc: a repo made and deleted
            tmp = f"t{me}-{n}"
            client.create_repo(tmp)
            client.put_file(f"{tmp}@master:/x", rng.choice(pool))
            client.delete_repo(tmp)
""")


def test_gc_in_a_loop_while_writers_run_and_get_killed(backend: Backend, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = backend.subprocess_env()
    client = backend.client()
    procs: dict[int, subprocess.Popen[str]] = {}
    logs: dict[int, Path] = {}
    rng = random.Random(7)
    writers = 8  # as the issue asks: 8 writer processes, some SIGKILLed and replaced
    next_id = 0

    def spawn() -> None:
        nonlocal next_id
        logs[next_id] = tmp_path / f"w{next_id}.log"
        procs[next_id] = subprocess.Popen([sys.executable, str(script), str(next_id), str(next_id)], env=env,
                                          stdout=logs[next_id].open("w"), stderr=subprocess.STDOUT, text=True)
        next_id += 1

    for _ in range(writers):
        spawn()
    gcs = killed = 0
    start = time.monotonic()

    def landed_so_far() -> int:
        return sum(log.read_text().count("LANDED ") for log in logs.values() if log.exists())

    try:  # 35 s at least; on a loaded machine, on until 60 files have landed (at most 150 s)
        while time.monotonic() - start < 35 or (landed_so_far() < 60 and time.monotonic() - start < 150):
            client.gc(grace=0.5)  # shorter than many puts take: the fence, not the grace, keeps them whole
            gcs += 1
            if rng.random() < 0.35:
                victim = rng.choice([i for i, p in procs.items() if p.poll() is None])
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                killed += 1
                spawn()
            time.sleep(rng.uniform(0.1, 0.6))
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
    client.gc(grace=0)
    landed = failed = 0
    for log in logs.values():
        text = log.read_text()
        # the line a writer was printing when SIGKILLed may be torn (a write crossing a page boundary is cut
        # short by a fatal signal): it has no newline yet, and it said nothing that is checked
        for line in text[:text.rfind("\n") + 1].splitlines():
            if line.startswith("FAILED"):
                failed += 1
                assert "gc" in line or "Conflict" in line, line
            if not line.startswith("LANDED"):
                continue
            _, repo, commit, path, sha = line.split(" ")
            assert hashlib.sha256(client.get_file(f"{repo}@{commit}:{path}")).hexdigest() == sha, line
            landed += 1
    print(f"gc runs {gcs}, writers killed {killed}, files landed {landed}, writes refused {failed}")
    assert landed > 50 and gcs > 10 and killed > 2, (landed, gcs, killed)
    report = client.fsck()
    assert report.ok, report.problems
    client.close()


def test_the_server_runs_gc_on_a_schedule_one_replica_per_turn(backend: Backend) -> None:
    from dataclasses import replace

    from tusk.root.scheduler import Scheduler
    from tusk.services import Services

    settings = replace(backend.settings(), gc_interval=1.0, gc_grace=0.0)
    replicas = [Services.open(settings) for _ in range(2)]
    client = backend.client()
    try:
        client.create_repo("r")
        client.put_file("r@master:/f", os.urandom(1 << 20))
        client.delete_repo("r")
        assert list(client.services.ctx.objects.list("chunks/"))
        schedulers = [Scheduler(s, poll=0.1) for s in replicas]
        for sch in schedulers:
            sch.start()
        deadline = time.monotonic() + 20
        while list(client.services.ctx.objects.list("chunks/")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(client.services.ctx.objects.list("chunks/")) == []
        for sch in schedulers:
            sch.stop()
        runs = [sch.last_gc for sch in schedulers if sch.last_gc is not None]
        assert runs and all(r["error"] is None for r in runs), runs
        assert schedulers[0].status()["gc_interval"] == 1.0
    finally:
        client.close()
        for s in replicas:
            s.close()


def test_gc_settings_are_checked() -> None:
    from tusk.config import Settings
    from tusk.errors import InvalidArgument

    s = Settings.from_env(env={"TUSK_HOME": "/tmp/x", "TUSK_GC_INTERVAL": "6h", "TUSK_GC_GRACE": "10m"},
                          use_context=False)
    assert s.gc_interval == 6 * 3600 and s.gc_grace == 600
    assert Settings.from_env(env={"TUSK_HOME": "/tmp/x"}, use_context=False).gc_interval is None
    with pytest.raises(InvalidArgument, match="TUSK_GC_INTERVAL"):
        Settings.from_env(env={"TUSK_HOME": "/tmp/x", "TUSK_GC_INTERVAL": "0s"}, use_context=False)
