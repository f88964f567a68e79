from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.markup import escape

from tusk.cli._state import emit, err, out, print_wide, say, state
from tusk.errors import InvalidArgument
from tusk.units import human_size


def fsck(fast: bool = typer.Option(False, "--fast", help="check chunks exist, at their size, without hashing them"),
         repair: bool = typer.Option(False, "--repair", help="rewrite bad chunks from good copies in the store")
         ) -> None:
    """Verify every reachable tree and chunk; exit 3 if anything is (still) wrong."""
    report = state.client.fsck(verify_chunks=not fast, repair=repair)
    if state.json:
        emit(report.to_dict() | {"ok": report.ok}, [])
    else:
        say(f"checked {report.commits} commits, {report.trees} directories, {report.chunks} chunks"
                  f" ({human_size(report.bytes_verified)} hashed)")
        for path in report.repaired:
            out.print(f"[green]repaired[/green] {escape(path)}")
        for p in report.problems:
            where = f"{p.repo}@{p.commit or '-'}:{p.path or '/'}"
            err.print(f"[red]problem[/red] {escape(where)}: {escape(p.problem)}")
        if report.ok:
            out.print("[green]no problems found[/green]")
    if not report.ok:
        raise typer.Exit(3)


def gc(dry_run: bool = typer.Option(False, "--dry-run", help="report what would be reclaimed; delete nothing"),
       grace: str = typer.Option("1h", "--grace", help="spare unreferenced objects younger than this (Go syntax:"
                                 " 30s, 10m, 1h); 0s only when no writer runs")) -> None:
    """Delete stored objects nothing refers to (chunks, packs, directories, leftovers of killed writes)."""
    from tusk.schedules import parse_duration

    try:
        seconds = parse_duration(grace)
    except ValueError as exc:
        raise InvalidArgument(f"--grace: {exc}") from None
    assert seconds is not None
    report = state.client.gc(dry_run=dry_run, grace=seconds)
    if state.json:
        emit(report.to_dict(), [])
        return
    verb = "would reclaim" if report.dry_run else "reclaimed"
    say(f"scanned {report.objects_scanned} objects ({human_size(report.bytes_scanned)}): "
        f"{report.objects_live} live ({human_size(report.bytes_live)}), "
        f"{report.objects_young} unreferenced but younger than {grace} ({human_size(report.bytes_young)})")
    for note in report.notes:
        err.print(f"[yellow]note[/yellow] {escape(note)}")
    extra = f", {report.packs_rewritten} packs rewritten" if report.packs_rewritten else ""
    temp = f", {report.temporary_swept} leftovers of unfinished writes" if report.temporary_swept else ""
    out.print(f"[green]{verb}[/green] {human_size(report.bytes_swept)}: {report.objects_swept} objects{extra}{temp}")


def extract(dest: str = typer.Argument(..., metavar="DEST",
                                      help="a file, - for stdout, or s3://bucket/key")) -> None:
    """Write the whole store (metadata and every object) as one archive, for `tusk restore`."""
    import sys

    report = state.client.extract(sys.stdout.buffer if dest == "-" else dest)
    if state.json:
        (err.print if dest == "-" else out.print)(json.dumps(report.to_dict()), markup=False, highlight=False)
        return
    (err.print if dest == "-" else out.print)(
        f"extracted {report.rows} rows of {len(report.tables)} tables and {report.objects} objects "
        f"({human_size(report.object_bytes)}) to {escape(dest)} ({human_size(report.archive_bytes)})")


def restore(src: str = typer.Argument(..., metavar="SRC", help="a file, - for stdin, or s3://bucket/key")) -> None:
    """Load an archive from `tusk extract` into this store, which must be empty; then fsck it (exit 3 if bad)."""
    import sys

    report = state.client.restore(sys.stdin.buffer if src == "-" else src)
    check = report.fsck
    if state.json:
        emit(report.to_dict() | {"ok": check is None or check.ok}, [])
    else:
        say(f"restored {report.rows} rows of {len(report.tables)} tables and {report.objects} objects "
            f"({human_size(report.object_bytes)})")
        if check is not None:
            say(f"fsck: checked {check.commits} commits, {check.trees} directories, {check.chunks} chunks")
            for p in check.problems:
                err.print(f"[red]problem[/red] {escape(f'{p.repo}@{p.commit or chr(45)}:{p.path or chr(47)}')}: "
                          f"{escape(p.problem)}")
            if check.ok:
                out.print("[green]no problems found[/green]")
    if check is not None and not check.ok:
        raise typer.Exit(3)


def demo(data: Path | None = typer.Option(None, "--data", help="directory with adult.data and adult.test"),
         home: Path | None = typer.Option(None, "--home", help="Tusk home for the demo (default: a new temp dir)"),
         example: Path | None = typer.Option(None, "--example", help="the examples/census-income directory"),
         ) -> None:
    """The census-income story end to end: data, training, promotion, rollback, shadow, lineage."""
    from tusk.cli._state import job_progress
    from tusk.demo import run_demo

    client = run_demo(out.print, data, home, example, job_progress(lambda: None))
    client.close()


def logs(pipeline: str | None = typer.Option(None, "--pipeline", "-p"),
         job: str | None = typer.Option(None, "--job", "-j"),
         datum: str | None = typer.Option(None, "--datum", "-d"),
         grep: str | None = typer.Option(None, "--grep", help="only lines containing this text"),
         follow: bool = typer.Option(False, "--follow", "-f",
                                     help="keep printing lines as datums finish (until the job ends, with --job;"
                                          " else until Ctrl-C)"),
         poll: float = typer.Option(1.0, "--poll", help="seconds between looks, with --follow")) -> None:
    """Print the logs of user code, filtered by pipeline, job and datum."""
    import time

    seen: set[tuple[str, str, int]] = set()
    while True:
        lines = state.client.logs(pipeline, job, datum, grep)
        if state.json and not follow:
            emit([{"job": j, "datum": d, "line": line} for j, d, line in lines], [])
            return
        counts: dict[tuple[str, str], int] = {}
        for j, d, line in lines:
            n = counts[(j, d)] = counts.get((j, d), 0) + 1
            if (j, d, n) in seen:
                continue
            seen.add((j, d, n))
            if state.json:
                out.print(json.dumps({"job": j, "datum": d, "line": line}), highlight=False, markup=False)
            else:
                out.print(f"{j[:8]} {d[:8]} {line}", highlight=False, markup=False)
        if not follow or (job is not None and state.client.inspect_job(job).state not in ("created", "running")):
            return
        time.sleep(poll)


def lineage(ref: str = typer.Argument(..., metavar="REPO@REF[:/PATH]")) -> None:
    """Show where a commit (or one file of it) came from and what was computed from it."""
    from rich.tree import Tree

    data = state.client.lineage(ref)
    if state.json:
        out.print(json.dumps(data, indent=2), markup=False, highlight=False)
        return

    def label(n: dict[str, object]) -> str:
        how = f" ← {n['pipeline']} v{n['pipeline_version']} job {str(n['job'])[:8]}" if n.get("job") else \
            f" ({n.get('origin', '?')})"
        return f"[bold]{escape(str(n['repo']))}[/bold]@{n['commit']}{escape(how)} [dim]{n.get('state', '')}[/dim]"

    def grow(tree: Tree, node: dict[str, object], key: str) -> None:
        children = node.get(key)
        assert isinstance(children, list)
        for child in children:
            grow(tree.add(label(child)), child, key)

    if data.get("datum"):
        d = data["datum"]
        say(f"{d['path']} was written by datum {d['id'][:12]} of job {d['job'][:12]} ({d['state']}) from:",
                  highlight=False)
        for i in d["inputs"]:
            say(f"  {i.get('name')}: {i.get('repo')}@{i.get('commit')}:{i.get('path')}", highlight=False)
    elif "datum" in data:
        say("(no datum wrote this file: it was committed by hand)")
    up = Tree(f"upstream of {label(data['upstream'])}")
    grow(up, data["upstream"], "inputs")
    down = Tree(f"downstream of {label(data['downstream'])}")
    grow(down, data["downstream"], "outputs")
    print_wide(up)  # piped: whole lines, never cut at 80 columns
    print_wide(down)


def server(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8080, "--port", "-p"),
           workers: int = typer.Option(1, "--workers", "-w",
                                       help="worker processes sharing the port and the loaded models"),
           deployment: list[str] = typer.Option([], "--deployment", "-d", help="serve only these (repeatable)"),
           poll: float = typer.Option(1.0, "--poll", help="seconds between checks for branch moves and rollouts"),
           no_request_log: bool = typer.Option(False, "--no-request-log", help="do not commit request logs"),
           log_level: str = typer.Option("info", "--log-level"),
           log_format: str = typer.Option(None, "--log-format",
                                          help="text or json (one object per line; default when not a terminal)"),
           auth: bool = typer.Option(None, "--auth/--no-auth",
                                     help="require API tokens (default: off on loopback, on elsewhere)"),
           scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler",
                                          help="run triggered jobs and cron ticks here"),
           allow_unsandboxed: bool = typer.Option(False, "--allow-unsandboxed",
                                                  help="with auth on, run user code without a sandbox anyway "
                                                       "(or TUSK_ALLOW_UNSANDBOXED=1)"),
           s3_port: int = typer.Option(30600, "--s3-port",
                                       help="serve the S3 gateway on this port (Pachyderm's default); see "
                                            "docs/s3-gateway.md"),
           no_s3: bool = typer.Option(False, "--no-s3", help="do not serve the S3 gateway"),
           grpc_port: int = typer.Option(8081, "--grpc-port",
                                         help="serve OIP V2 over gRPC (KServe's GRPCInferenceService) on this port; "
                                              "see docs/serving.md"),
           no_grpc: bool = typer.Option(False, "--no-grpc", help="do not serve gRPC")) -> None:
    """Run the REST API (/api/v1, OpenAPI at /docs), the job scheduler and the deployments (OIP V2 over REST
    and gRPC, /invocations, /metrics, /v1/algo) until SIGTERM."""
    from tusk.root.server import ServeOptions, serve

    settings = state.client.settings
    if state.client.remote:
        if os.environ.get("TUSK_ADDRESS"):
            raise InvalidArgument(f"TUSK_ADDRESS={settings.address} is set: `tusk server` serves a store; unset it")
        raise InvalidArgument(f"the current context points at the server {settings.address}: `tusk server` serves "
                              "a store; run `TUSK_CONTEXT=none tusk server`, or `tusk context use` a context "
                              "without an address")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if auth is None:
        auth = not loopback
    if auth and not state.client.list_roles("*"):
        raise InvalidArgument("auth is on but has no admin yet: run `tusk auth activate --admin NAME` first "
                              "(or pass --no-auth to serve without tokens)")
    if not no_grpc and not 0 < grpc_port < 65536:
        raise InvalidArgument(f"--grpc-port {grpc_port}: use a port between 1 and 65535, or --no-grpc")
    gateway_port = None if no_s3 else s3_port
    if gateway_port == port:
        raise InvalidArgument(f"--s3-port {s3_port} is also the --port: give the S3 gateway a port of its own, or "
                              "pass --no-s3")
    if not no_grpc and grpc_port in (port, gateway_port):
        raise InvalidArgument(f"--grpc-port {grpc_port} is also the {'--port' if grpc_port == port else '--s3-port'}:"
                              " give gRPC a port of its own, or pass --no-grpc")
    if log_format not in (None, "text", "json"):
        raise InvalidArgument(f"--log-format {log_format}: use text or json")
    fmt = log_format or ("text" if err.is_terminal else "json")
    state.close()  # each worker opens its own services
    serve(settings, ServeOptions(host=host, port=port, workers=workers, deployments=tuple(deployment), poll=poll,
                                 request_logging=not no_request_log, log_level=log_level, log_format=fmt,
                                 auth=auth, scheduler=scheduler,
                                 allow_unsandboxed=allow_unsandboxed or settings.allow_unsandboxed,
                                 s3_port=gateway_port,
                                 grpc_port=None if no_grpc else grpc_port))
