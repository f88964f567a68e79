"""The ``tusk`` command: noun-verb (``tusk repo create``) or pachctl's verb-noun
(``tusk create repo``). Every command is a thin layer over ``tusk.Client``."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

import typer
from rich.markup import escape

from tusk.cli import (
    admin,
    algo,
    auth,
    branch,
    commit,
    context,
    datum,
    deploy,
    file,
    image,
    job,
    legacy,
    model,
    pipeline,
    repo,
    secret,
    transaction,
)
from tusk.cli import ui as ui_cmd
from tusk.cli._state import err, say, state
from tusk.cli.completion import complete_if_asked, completion
from tusk.errors import TuskError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tusk",
    help="Tusk: versioned data, pipelines and models. Add --json to any command for machine-readable output.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from tusk import __version__

        say(f"tusk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print Tusk's version and exit")) -> None:
    """Tusk: versioned data, pipelines and models. Add --json to any command for machine-readable output."""


app.add_typer(repo.app, name="repo")
app.add_typer(file.app, name="file")
app.add_typer(commit.app, name="commit")
app.add_typer(branch.app, name="branch")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(job.app, name="job")
app.add_typer(datum.app, name="datum")
app.add_typer(model.app, name="model")
app.add_typer(deploy.app, name="deploy")
app.add_typer(algo.app, name="algo")
app.add_typer(auth.app, name="auth")
app.add_typer(secret.app, name="secret")
app.add_typer(image.app, name="image")
app.add_typer(context.app, name="context")
app.add_typer(transaction.app, name="transaction")
app.command("fsck")(admin.fsck)
app.command("gc")(admin.gc)
app.command("extract")(admin.extract)
app.command("restore")(admin.restore)
app.command("demo")(admin.demo)
app.command("logs")(admin.logs)
app.command("lineage")(admin.lineage)
app.command("server")(admin.server)
app.command("ui")(ui_cmd.ui)
app.command("completion")(completion)


def _plain_help(typer_app: typer.Typer) -> None:
    """Help as plain text, git- and pachctl-style: Rich's help renderer costs a third of `tusk --help`."""
    typer_app.rich_markup_mode = None
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)


_plain_help(app)

NOUNS = {"repo", "file", "commit", "branch", "pipeline", "job", "datum", "model", "deploy", "algo", "auth",
         "context", "transaction", "secret"}
VERBS = {"create", "list", "inspect", "delete", "put", "get", "glob", "diff", "copy", "start", "finish",
         "wait", "squash", "update", "stop", "rerun", "publish", "call", "rollout", "rollback", "history", "use",
         "subscribe", "draw", "edit", "resume"}


def normalize_argv(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Rewrite pachctl 1.x's hyphenated verbs, swap pachctl's verb-noun order to noun-verb, lift ``--json`` out."""
    argv = legacy.translate(list(argv))
    args = [a for a in argv if a != "--json"]
    as_json = len(args) != len(argv)
    for words, instead in ALIASES.items():
        if tuple(args[:len(words)]) == words:
            args = [*instead, *args[len(words):]]
            break
    if len(args) >= 2 and args[0] in VERBS and args[1] in NOUNS:
        args[0], args[1] = args[1], args[0]
    return args, as_json


# pachctl commands whose Tusk command has another shape (docs/pachyderm.md: every pachctl command)
ALIASES: dict[tuple[str, ...], list[str]] = {
    ("run", "cron"): ["pipeline", "run-cron"], ("version",): ["--version"],
    ("auth", "get"): ["auth", "role", "list"], ("auth", "set"): ["auth", "role", "set"],
    ("config", "list", "context"): ["context", "list"], ("config", "set", "active-context"): ["context", "use"],
}


# the module a missing import names → the extra that installs it
EXTRAS = {"boto3": "s3", "botocore": "s3", "psycopg": "postgres", "psycopg2": "postgres", "sklearn": "ml",
          "scipy": "ml", "pandas": "ml", "joblib": "ml", "onnxruntime": "onnx", "mlflow": "mlflow",
          "dask": "distributed", "distributed": "distributed"}


def _error(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)  # messages quote globs and extras: [ab]


_SIGINT = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    """Ctrl-C: end the user programs this process runs (they are in their own sessions, so the terminal's
    SIGINT does not reach them), then interrupt the main thread, whose job runner releases its job."""
    _SIGINT.set()
    runtimes = sys.modules.get("tusk.pipelines.runtimes")
    if runtimes is not None:
        runtimes.stop_programs()
    raise KeyboardInterrupt  # (typer turns it into Exit(130): ``_SIGINT`` tells main it was a Ctrl-C)


def _interrupted() -> str:
    """What a Ctrl-C left behind: nothing, or a commit that landed and jobs that resume later."""
    client = state.opened
    if client is not None and client.remote:
        return ("interrupted: a write the server received in full lands there and its jobs run on the server "
                "(see `tusk list commit`, `tusk list job`)")
    if client is None or not client.interrupted:
        return "interrupted: nothing was committed"
    commits: list[str] = []
    for global_id in client.interrupted:
        with contextlib.suppress(TuskError):
            commits += [f"{c.repo}@{c.id}" for c in client.inspect_commit_set(global_id) if c.origin == "user"]
    what = f"the commit {', '.join(commits)} landed" if commits else "the write landed"
    return f"interrupted: {what}; its jobs were interrupted and resume on the next `tusk job wait` or write"


def main(argv: Sequence[str] | None = None) -> None:
    complete_if_asked(app)
    code = 0
    on_main = threading.current_thread() is threading.main_thread()
    _SIGINT.clear()
    previous = None
    try:
        if on_main:
            previous = signal.signal(signal.SIGINT, _on_sigint)
        args, state.json = normalize_argv(sys.argv[1:] if argv is None else argv)  # (1.x verbs may be refused)
        result = app(args=args, prog_name="tusk", standalone_mode=False)
        if isinstance(result, int):  # typer.Exit(code) is returned, not raised, outside standalone mode
            code = result
        if _SIGINT.is_set() and not state.quiet_interrupt:
            raise KeyboardInterrupt
        client = state.opened
        if code == 0 and client is not None and client.batched:  # pachctl's words, on stderr
            err.print(f"Added to transaction: {client.active_transaction}", markup=False, highlight=False)
        if code == 0 and client is not None:
            client.raise_for_jobs()  # a job the command waited for failed: exit 6 (the write itself stands)
    except TuskError as exc:
        _error(exc.message)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 0 if state.quiet_interrupt else 130
        if code:
            _error(_interrupted())
    except BrokenPipeError:
        code = 0
    except typer.Abort as exc:  # click turns a Ctrl-C into Abort
        if isinstance(exc.__context__, KeyboardInterrupt):
            code = 0 if state.quiet_interrupt else 130
            if code:
                _error(_interrupted())
        else:
            code = 1
    except ImportError as exc:  # an optional dependency that is not installed
        root = (exc.name or "").split(".")[0]
        if root not in EXTRAS:
            raise
        _error(f"this needs the Python package {root!r}, which is not installed: pip install 'tusk[{EXTRAS[root]}]'")
        code = 2
    except Exception as exc:
        # usage errors from the (vendored) click parser: one line, and where to look
        message = getattr(exc, "format_message", None)
        if message is None or not hasattr(exc, "exit_code"):
            raise
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "tusk"
        _error(f"{message()} (see `{where} --help`)")
        code = exc.exit_code
    finally:
        state.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if on_main and _SIGINT.is_set():
        _exit_interrupted(code)
    sys.exit(code)


def _exit_interrupted(code: int) -> None:
    """End the process after a Ctrl-C with ``code`` (130), always. ``sys.exit`` does not promise it: CPython dies
    by SIGINT instead when the KeyboardInterrupt passed through code that a C extension ran with ``PyRun_String``
    (a Cython module's initialisation, if the Ctrl-C came while one loaded), however it was caught later."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
