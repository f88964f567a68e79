"""pachctl 1.x's hyphenated verbs (``create-repo``, ``put-file REPO BRANCH PATH``, ...), rewritten to the
modern command before it is parsed. They are not commands, so they never show in ``--help``; every flag
the modern verb has works, and a 1.x flag Tusk cannot honour is refused by name, with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tusk.errors import InvalidArgument

__all__ = ["LEGACY_VERBS", "translate"]

# (1.x verb, flag) → why it is refused; "*" matches every verb
_REFUSED: dict[tuple[str, str], str] = {
    ("*", "--parallelism"): "Tusk reads sources one at a time; drop the flag",
    ("put-file", "-p"): "Tusk reads sources one at a time; drop the flag",
    ("get-file", "-p"): "Tusk reads sources one at a time; drop the flag",
    ("start-commit", "-p"): "Tusk starts a commit on a branch head: move the branch first with "
                            "`tusk create branch REPO@BRANCH --head PARENT`",
    ("start-commit", "--parent"): "Tusk starts a commit on a branch head: move the branch first with "
                                  "`tusk create branch REPO@BRANCH --head PARENT`",
    ("list-repo", "-p"): "Tusk cannot list repos by provenance; see `tusk lineage REPO@BRANCH`",
    ("list-repo", "--provenance"): "Tusk cannot list repos by provenance; see `tusk lineage REPO@BRANCH`",
    ("delete-repo", "--all"): "name each repo to delete: `tusk delete repo NAME`",
    ("create-pipeline", "-p"): "Tusk builds and pushes no images; import one with `tusk image import`",
    ("create-pipeline", "--push-images"): "Tusk builds and pushes no images; import one with `tusk image import`",
    ("create-pipeline", "-r"): "Tusk pushes no images, so it needs no registry",
    ("create-pipeline", "--registry"): "Tusk pushes no images, so it needs no registry",
    ("create-pipeline", "-u"): "Tusk pushes no images, so it needs no registry login",
    ("create-pipeline", "--username"): "Tusk pushes no images, so it needs no registry login",
    ("create-pipeline", "--password"): "Tusk pushes no images, so it needs no registry login",
    ("list-job", "-i"): "Tusk lists jobs by pipeline (-p) or by global id (--global-id COMMIT_SET)",
    ("list-job", "--input"): "Tusk lists jobs by pipeline (-p) or by global id (--global-id COMMIT_SET)",
}

# flags that take a value, so their value is not taken for a positional argument
_VALUED = {"-f", "--file", "-i", "--input-file", "-o", "--output", "-m", "--message", "--description", "-d",
           "--split", "--target-file-datums", "--target-file-bytes", "--header-records", "-n", "--number",
           "--pipeline", "--global-id", "--timeout"}


def _split(verb: str, args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional arguments and flags (with their values), refusing the 1.x flags Tusk cannot honour."""
    positional: list[str] = []
    flags: list[str] = []
    it = iter(args)
    for arg in it:
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            why = _REFUSED.get((verb, name)) or _REFUSED.get(("*", name))
            if why is not None:
                raise InvalidArgument(f"`pachctl {verb}`'s {name} is not supported: {why}")
            if name == "--raw":
                flags.append("--json")
                continue
            flags.append(arg)
            value = next(it, None) if "=" not in arg and name in _VALUED else None
            if value is not None:
                flags.append(value)
            continue
        positional.append(arg)
    return positional, flags


def _arity(verb: str, positional: list[str], least: int, most: int, usage: str) -> None:
    if not least <= len(positional) <= most:
        raise InvalidArgument(f"`{verb}` takes {usage} (pachctl 1.x form); got {len(positional)} argument(s)")


def _file_ref(verb: str, positional: list[str], usage: str, path_needed: bool) -> str:
    _arity(verb, positional, 3 if path_needed else 2, 3, usage)
    repo, ref, *path = positional
    return f"{repo}@{ref}" + (f":{path[0] if path[0].startswith('/') else '/' + path[0]}" if path else "")


def _put_file(positional: list[str], flags: list[str]) -> list[str]:
    dest = _file_ref("put-file", positional, "REPO BRANCH [PATH]", False)
    flags = [f for f in flags if f not in ("-c", "--commit")]  # every Tusk put lands as one commit already
    if not any(f in ("-f", "--file", "-i", "--input-file") or f.startswith(("--file=", "--input-file="))
               for f in flags):
        flags += ["-f", "-"]  # 1.x reads stdin by default
    return ["put", "file", dest, *flags]


def _start_commit(positional: list[str], flags: list[str]) -> list[str]:
    _arity("start-commit", positional, 1, 2, "REPO BRANCH")
    if len(positional) == 1:
        raise InvalidArgument("`start-commit REPO` starts a commit on no branch in pachctl 1.x; Tusk commits are "
                              f"on a branch: `start-commit {positional[0]} master`")
    return ["commit", "start", f"{positional[0]}@{positional[1]}", *flags]


def _delete_repo(positional: list[str], flags: list[str]) -> list[str]:
    _arity("delete-repo", positional, 1, 1, "REPO")
    return ["repo", "delete", positional[0], *["--force" if f == "-f" else f for f in flags]]


def _inspect_job(positional: list[str], flags: list[str]) -> list[str]:
    _arity("inspect-job", positional, 1, 1, "JOB")
    block = [f for f in flags if f in ("-b", "--block")]
    rest = [f for f in flags if f not in block]
    return ["job", "wait" if block else "inspect", positional[0], *rest]


def _fixed(modern: list[str], least: int, most: int, usage: str) -> Callable[[str, list[str], list[str]], list[str]]:
    def build(verb: str, positional: list[str], flags: list[str]) -> list[str]:
        _arity(verb, positional, least, most, usage)
        return [*modern, *positional, *flags]

    return build


_SIMPLE = {
    "create-repo": _fixed(["repo", "create"], 1, 1, "REPO"),
    "list-repo": _fixed(["repo", "list"], 0, 0, "no arguments"),
    "inspect-repo": _fixed(["repo", "inspect"], 1, 1, "REPO"),
    "create-pipeline": _fixed(["pipeline", "create"], 0, 0, "-f SPEC"),
    "update-pipeline": _fixed(["pipeline", "update"], 0, 0, "-f SPEC"),
    "list-pipeline": _fixed(["pipeline", "list"], 0, 0, "no arguments"),
    "inspect-pipeline": _fixed(["pipeline", "inspect"], 1, 1, "PIPELINE"),
    "delete-pipeline": _fixed(["pipeline", "delete"], 1, 1, "PIPELINE"),
    "list-job": _fixed(["job", "list"], 0, 0, "no arguments (-p PIPELINE)"),
}


def _translate(verb: str, positional: list[str], flags: list[str]) -> list[str]:
    if verb in _SIMPLE:
        return _SIMPLE[verb](verb, positional, flags)
    if verb == "put-file":
        return _put_file(positional, flags)
    if verb == "get-file":
        return ["get", "file", _file_ref(verb, positional, "REPO COMMIT PATH", True), *flags]
    if verb == "list-file":
        return ["list", "file", _file_ref(verb, positional, "REPO COMMIT [PATH]", False), *flags]
    if verb == "start-commit":
        return _start_commit(positional, flags)
    if verb == "finish-commit":
        _arity(verb, positional, 2, 2, "REPO COMMIT")
        return ["commit", "finish", f"{positional[0]}@{positional[1]}", *flags]
    if verb == "list-commit":
        _arity(verb, positional, 1, 2, "REPO [BRANCH]")
        return ["commit", "list", "@".join(positional), *flags]
    if verb == "inspect-commit":
        _arity(verb, positional, 2, 2, "REPO COMMIT")
        return ["commit", "inspect", f"{positional[0]}@{positional[1]}", *flags]
    if verb == "delete-repo":
        return _delete_repo(positional, flags)
    assert verb == "inspect-job"
    return _inspect_job(positional, flags)




_MODERN = {"create-repo": "repo create", "list-repo": "repo list", "inspect-repo": "repo inspect",
           "delete-repo": "repo delete", "put-file": "file put", "get-file": "file get", "list-file": "file list",
           "start-commit": "commit start", "finish-commit": "commit finish", "list-commit": "commit list",
           "inspect-commit": "commit inspect", "create-pipeline": "pipeline create",
           "update-pipeline": "pipeline update", "list-pipeline": "pipeline list",
           "inspect-pipeline": "pipeline inspect", "delete-pipeline": "pipeline delete", "list-job": "job list",
           "inspect-job": "job inspect"}


def translate(args: list[str]) -> list[str]:
    """``args`` with a leading 1.x verb rewritten to its modern command (others are returned as they are)."""
    if not args or args[0] not in LEGACY_VERBS:
        return args
    if any(a in ("--help", "-h") for a in args[1:]):
        return [*_MODERN[args[0]].split(), "--help"]
    positional, flags = _split(args[0], args[1:])
    return _translate(args[0], positional, flags)


LEGACY_VERBS = frozenset(_MODERN)
