from __future__ import annotations

from pathlib import Path

import typer

from tusk.cli._state import emit, err, human_size, out, state


def fsck(fast: bool = typer.Option(False, "--fast", help="check chunks exist without hashing them")) -> None:
    """Verify every reachable tree and chunk; exit 3 if anything is wrong."""
    report = state.client.fsck(verify_chunks=not fast)
    if state.json:
        emit(report.to_dict() | {"ok": report.ok}, [])
    else:
        out.print(f"checked {report.commits} commits, {report.trees} directories, {report.chunks} chunks"
                  f" ({human_size(report.bytes_verified)} hashed)")
        for p in report.problems:
            err.print(f"[red]problem[/red] {p.repo}@{p.commit or '-'}:{p.path or '/'}: {p.problem}")
        if report.ok:
            out.print("[green]no problems found[/green]")
    if not report.ok:
        raise typer.Exit(3)


def demo(data: Path | None = typer.Option(None, "--data", help="directory with adult.data and adult.test"),
         home: Path | None = typer.Option(None, "--home", help="Tusk home for the demo (default: a new temp dir)"),
         ) -> None:
    """Walk through versioned data on the UCI Census Income files."""
    from tusk.demo import find_census_data, run_demo

    data_dir = data or find_census_data(Path.cwd())
    client = run_demo(out.print, data_dir, home)
    client.close()
