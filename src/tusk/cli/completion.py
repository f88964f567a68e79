"""Shell completion: ``tusk completion bash|zsh|fish`` prints the script; the shell then asks ``tusk`` itself."""

from __future__ import annotations

import os
import sys

import typer

__all__ = ["complete_if_asked", "completion"]

_VAR = "_TUSK_COMPLETE"  # set by the completion script when the shell asks for candidates
SHELLS = ("bash", "zsh", "fish")


def completion(shell: str = typer.Argument(..., help="bash, zsh or fish")) -> None:
    """Print the completion script for a shell: eval "$(tusk completion bash)" (or add it to ~/.bashrc)."""
    from typer._completion_shared import get_completion_script

    from tusk.errors import InvalidArgument

    if shell not in SHELLS:
        raise InvalidArgument(f"no completion for {shell!r}: use {', '.join(SHELLS)}")
    sys.stdout.write(get_completion_script(prog_name="tusk", complete_var=_VAR, shell=shell) + "\n")


def complete_if_asked(app: typer.Typer) -> None:
    """Answer the shell's completion request (and exit) when the completion script is what ran us."""
    if _VAR not in os.environ:
        return
    from typer.completion import completion_init  # type: ignore[attr-defined]

    completion_init()
    app(prog_name="tusk", args=[])  # click answers the request from the environment and exits
