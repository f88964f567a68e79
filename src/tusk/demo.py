"""`tusk demo`: a walkthrough of versioned data on the UCI Census Income files.

It runs in its own Tusk home, so it never touches the user's repos, and it
uses only the public SDK, the same calls a user would make.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from tusk.config import Settings
from tusk.sdk import Client
from tusk.storage.objects import LocalObjectStore

__all__ = ["find_census_data", "run_demo"]

Say = Callable[[str], None]


def find_census_data(start: Path) -> Path | None:
    """``shared/data/census-income`` beside (or above) the working directory."""
    for base in [start, *start.parents]:
        for candidate in (base / "shared" / "data" / "census-income", base / "data" / "census-income"):
            if (candidate / "adult.data").is_file():
                return candidate
    return None


def _synthetic_rows(n: int, seed: int) -> str:
    rng = random.Random(seed)
    jobs = ["Tech-support", "Craft-repair", "Sales", "Exec-managerial", "Prof-specialty"]
    rows = []
    for _ in range(n):
        age = rng.randint(17, 90)
        rows.append(f"{age}, Private, {rng.randint(10000, 900000)}, HS-grad, 9, Never-married, "
                    f"{rng.choice(jobs)}, Not-in-family, White, Male, 0, 0, {rng.randint(10, 80)}, "
                    f"United-States, {'>50K' if rng.random() < 0.24 else '<=50K'}\n")
    return "".join(rows)


def _stored_bytes(client: Client) -> int | None:
    objects = client.services.ctx.objects
    if not isinstance(objects, LocalObjectStore):
        return None
    return sum(p.stat().st_size for p in objects.root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / (1 << 20):.2f} MiB"


def run_demo(say: Say, data_dir: Path | None = None, home: Path | None = None) -> Client:
    """Run the walkthrough, narrating through ``say``; return the client for inspection."""
    home = home or Path(tempfile.mkdtemp(prefix="tusk-demo-"))
    client = Client(settings=Settings.for_home(home))
    say(f"[bold]Tusk demo[/bold]: versioned data in {home}")

    say("\n[bold]1.[/bold] Create a repo and commit the census data")
    client.create_repo("census", "UCI Census Income (Adult)")
    if data_dir is not None:
        train = (data_dir / "adult.data").read_bytes()
        test = (data_dir / "adult.test").read_bytes()
        say(f"   using {data_dir}")
    else:
        train, test = _synthetic_rows(32561, 1).encode(), _synthetic_rows(16281, 2).encode()
        say("   census files not found; using generated rows of the same shape")
    with client.modify("census@master", "initial census import") as batch:
        batch.put_bytes("/raw/adult.data", train)
        batch.put_bytes("/raw/adult.test", test)
    first = client.inspect_commit("census@master")
    stored_first = _stored_bytes(client)
    say(f"   commit {first.id}  {_mib(first.size_bytes)} of data, {_mib(stored_first)} stored")

    say("\n[bold]2.[/bold] A new batch of 1,000 rows arrives: append it")
    batch_rows = _synthetic_rows(1000, 3).encode()
    second = client.put_file("census@master:/raw/adult.data", batch_rows, append=True,
                             description="append batch 2026-11")
    assert second is not None
    stored_second = _stored_bytes(client)
    for d in client.diff_files("census@master"):
        say(f"   {d.change:<8} {d.path}  {d.old_size} → {d.new_size} bytes")
    if stored_first is not None and stored_second is not None:
        say(f"   the commit stored {_mib(stored_second - stored_first)} more, for a "
            f"{_mib(second.size_bytes)} repo: unchanged chunks are shared")

    say("\n[bold]3.[/bold] Time travel: read the data as of the previous commit")
    old_rows = client.get_file("census@master^:/raw/adult.data").count(b"\n")
    new_rows = client.get_file("census@master:/raw/adult.data").count(b"\n")
    say(f"   census@master^ has {old_rows} rows; census@master has {new_rows}")

    say("\n[bold]4.[/bold] Branches are cheap pointers: pin the first import as `validated`")
    client.create_branch("census@validated", head=first.id)
    for b in client.list_branches("census"):
        say(f"   {b.name:<10} → {b.head}")

    say("\n[bold]5.[/bold] History and integrity")
    for c in client.list_commits("census@master"):
        say(f"   {c.id}  parent={c.parent or '-':<32}  {c.description}")
    report = client.fsck()
    say(f"   fsck: {report.commits} commits, {report.trees} directories, {report.chunks} chunks verified,"
        f" {'no problems' if report.ok else f'{len(report.problems)} problem(s)'}")
    say(f"\nTry it yourself: TUSK_HOME={home} tusk list commit census@master")
    return client
