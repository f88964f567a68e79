"""The ``tusk`` command: noun-verb (``tusk repo create``) or pachctl's verb-noun
(``tusk create repo``). Every command is a thin layer over ``tusk.Client``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from rich.markup import escape

from tusk.cli import admin, algo, auth, branch, commit, datum, deploy, file, job, model, pipeline, repo
from tusk.cli._state import err, out, state
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

        out.print(f"tusk {__version__}")
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
app.command("fsck")(admin.fsck)
app.command("demo")(admin.demo)
app.command("logs")(admin.logs)
app.command("lineage")(admin.lineage)
app.command("server")(admin.server)

NOUNS = {"repo", "file", "commit", "branch", "pipeline", "job", "datum", "model", "deploy", "algo", "auth"}
VERBS = {"create", "list", "inspect", "delete", "put", "get", "glob", "diff", "copy", "start", "finish",
         "wait", "squash", "update", "stop", "rerun", "publish", "call", "rollout", "rollback", "history"}


def normalize_argv(argv: Sequence[str]) -> tuple[list[str], bool]:
    """Swap pachctl's verb-noun order to noun-verb and lift ``--json`` out."""
    args = [a for a in argv if a != "--json"]
    as_json = len(args) != len(argv)
    if len(args) >= 2 and args[0] in VERBS and args[1] in NOUNS:
        args[0], args[1] = args[1], args[0]
    return args, as_json


def main(argv: Sequence[str] | None = None) -> None:
    args, state.json = normalize_argv(sys.argv[1:] if argv is None else argv)
    code = 0
    try:
        result = app(args=args, prog_name="tusk", standalone_mode=False)
        if isinstance(result, int):  # typer.Exit(code) is returned, not raised, outside standalone mode
            code = result
    except TuskError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)  # messages quote globs: [ab]
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except typer.Abort:
        code = 1
    except Exception as exc:
        # usage errors from the (vendored) click parser know how to show themselves
        show = getattr(exc, "show", None)
        if show is None or not hasattr(exc, "exit_code"):
            raise
        show()
        code = exc.exit_code
    finally:
        state.close()
    sys.exit(code)
