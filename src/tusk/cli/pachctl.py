"""Every pachctl command, and what ``tusk`` does with it.

``PACHCTL_COMMANDS`` lists pachctl 2.x's commands (its ``--help`` tree, the
verbs users type), each with what it does in Pachyderm. ``resolve`` decides
from the CLI itself: the command runs when ``tusk`` parses it (after the
verb-noun swap and the 1.x rewrites of ``tusk.cli.main.normalize_argv``) to a
command Tusk has; otherwise ``NOT_IN_TUSK`` must say why and what to use
instead. ``docs/pachyderm.md`` carries the rendered table
(``python scripts/pachyderm_fields.py --write``), and a test checks it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NOT_IN_TUSK", "PACHCTL_COMMANDS", "render_commands", "resolve"]

PACHCTL_COMMANDS: dict[str, str] = {
    "create repo": "make a repo", "list repo": "list repos", "inspect repo": "show a repo",
    "update repo": "change a repo's description", "delete repo": "delete a repo",
    "create branch": "make or move a branch (with triggers)", "list branch": "list branches",
    "inspect branch": "show a branch", "delete branch": "delete a branch",
    "start commit": "open a commit", "finish commit": "close it", "list commit": "list commits",
    "inspect commit": "show a commit", "wait commit": "wait until a commit and its jobs finish",
    "subscribe commit": "print commits as they finish", "squash commit": "fold a commit into its child",
    "delete commit": "delete an open or last commit", "put file": "write files", "get file": "read files",
    "list file": "list a directory", "inspect file": "show a file", "glob file": "list what a glob matches",
    "diff file": "compare two commits' files", "copy file": "copy without re-uploading",
    "delete file": "delete files", "create pipeline": "create a pipeline from a spec",
    "update pipeline": "a new version of a pipeline", "edit pipeline": "edit the spec in $EDITOR",
    "list pipeline": "list pipelines", "inspect pipeline": "show a pipeline", "draw pipeline": "draw the DAG",
    "stop pipeline": "pause a pipeline", "start pipeline": "resume it", "delete pipeline": "delete it",
    "run cron": "tick a cron input now", "run pipeline": "run a pipeline on chosen commits",
    "validate pipeline": "check a spec", "list job": "list jobs", "inspect job": "show a job",
    "wait job": "wait for a job", "stop job": "stop a job", "delete job": "delete a job's record",
    "list datum": "list a job's datums", "inspect datum": "show a datum", "restart datum": "retry datums",
    "logs": "user code's logs", "create secret": "make a Kubernetes secret", "list secret": "list secrets",
    "inspect secret": "show a secret", "delete secret": "delete a secret",
    "start transaction": "batch the next commands", "finish transaction": "run them as one",
    "delete transaction": "discard them", "stop transaction": "set it aside", "resume transaction": "take it up",
    "list transaction": "list transactions", "inspect transaction": "show one",
    "create project": "make a project", "list project": "list projects", "inspect project": "show one",
    "update project": "change one", "delete project": "delete one", "auth login": "sign in",
    "auth logout": "sign out", "auth whoami": "who am I", "auth activate": "turn auth on",
    "auth get": "roles on a resource", "auth set": "grant roles", "auth get-robot-token": "a token for a robot",
    "config get active-context": "the current context", "config set active-context": "use another context",
    "config list context": "list contexts", "config set context": "make a context", "mount": "mount repos",
    "unmount": "unmount them", "port-forward": "reach a cluster's services", "extract": "export the cluster",
    "restore": "load an export", "fsck": "check the store", "delete all": "delete everything",
    "version": "print versions", "completion": "shell completion", "debug dump": "collect a debug dump",
    "shell": "an interactive shell", "license activate": "Enterprise license", "enterprise activate": "Enterprise",
    "idp create-connector": "identity providers", "deploy local": "1.x: install on Kubernetes",
    "undeploy": "1.x: uninstall", "inspect cluster": "cluster info", "kube-events": "Kubernetes events",
    "loki": "Loki logs", "buildinfo": "build information",
}

# pachctl commands Tusk does not have: why, and what to use instead
NOT_IN_TUSK: dict[str, str] = {
    "update repo": "a repo's description is set at `tusk create repo NAME -d TEXT`",
    "inspect branch": "`tusk list branch REPO` shows each branch's head, trigger and provenance",
    "run pipeline": "no jobs on chosen commits: `tusk rerun pipeline NAME [--reprocess]` runs it on its inputs",
    "validate pipeline": "`tusk list datum -f SPEC` checks a spec and shows its datums without creating it",
    "delete job": "job records are kept for lineage; `tusk stop job JOB` ends one",
    "restart datum": "a failed datum runs again on `tusk rerun pipeline NAME` (finished datums are not redone)",
    "create project": "Tusk has one namespace, Pachyderm's default project (specs naming another are warned)",
    "list project": "one namespace: the default project", "inspect project": "one namespace: the default project",
    "update project": "one namespace: the default project", "delete project": "one namespace: the default project",
    "auth get-robot-token": "`tusk auth token create --user ROBOT`",
    "config get active-context": "`tusk context list` marks the current one",
    "config set context": "`tusk context create NAME --address URL`",
    "mount": "no FUSE: read repos with the tusk:// fsspec filesystem (pandas, DuckDB) or the S3 gateway",
    "unmount": "no FUSE mounts", "port-forward": "no Kubernetes: `tusk server` listens on its ports directly",
    "delete all": "delete repos and pipelines by name; a whole store is its TUSK_HOME or database",
    "debug dump": "`tusk logs` and `tusk fsck` show what a dump would",
    "shell": "Tusk's CLI has no interactive shell", "license activate": "no Enterprise edition: all of Tusk is open",
    "enterprise activate": "no Enterprise edition", "idp create-connector": "tokens only (`tusk auth`), no OIDC",
    "deploy local": "no cluster to deploy: `tusk server` runs one process (docs/deploy.md)",
    "undeploy": "no cluster", "inspect cluster": "`tusk server` prints its settings at start",
    "kube-events": "no Kubernetes", "loki": "no Loki: `tusk logs`", "buildinfo": "`tusk --version`",
}


def _click_app() -> Any:
    import typer

    from tusk.cli.main import app

    return typer.main.get_command(app)


def resolve(command: str) -> str | None:
    """The ``tusk`` command a pachctl command runs as (``tusk repo create``), or None when Tusk has none."""
    from tusk.cli.main import normalize_argv

    try:
        args, _ = normalize_argv(command.split())
    except Exception:  # a 1.x form Tusk refuses
        return None
    if args and args[0].startswith("--"):  # an option of tusk itself (`version` is `tusk --version`)
        return "tusk " + " ".join(args)
    group = _click_app()
    path = ["tusk"]
    for word in args:
        commands = getattr(group, "commands", None)  # a group (typer's vendored click: no isinstance)
        if commands is None:
            break
        sub = commands.get(word)
        if sub is None:
            return None
        path.append(word)
        group = sub
    return " ".join(path) if getattr(group, "commands", None) is None else None


def render_commands() -> str:
    """The markdown table of every pachctl command, with the counts, as docs/pachyderm.md carries it."""
    rows = []
    for command, meaning in PACHCTL_COMMANDS.items():
        runs = resolve(command)
        rows.append((command, meaning, f"`{runs}`" if runs else "not in Tusk",
                     "" if runs else NOT_IN_TUSK.get(command, "")))
    have = sum(1 for r in rows if r[2] != "not in Tusk")
    out = [f"{len(rows)} pachctl commands: {have} run in Tusk (verb first, as pachctl, or noun first), "
           f"{len(rows) - have} do not, each with what to use instead.", "",
           "| pachctl | Pachyderm | Tusk | Instead |", "| --- | --- | --- | --- |"]
    out += [f"| `pachctl {c}` | {m} | {t} | {why} |" for c, m, t, why in rows]
    return "\n".join(out) + "\n"
