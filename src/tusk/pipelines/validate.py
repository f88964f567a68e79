"""Everything about a pipeline spec that can be known before it runs, checked before anything is written.

A spec that can only fail (a glob that does not compile, ``$9`` with two
capture groups, a cycle) is refused at create and update alike, naming the
field and the problem; what a job would otherwise discover, it never has to.
The graph checks also keep a pipeline from writing where it has no business:
its output repo and cron tick repos are new repos, or its own.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from tusk.errors import AlreadyExists, Conflict, InvalidArgument, RepoNotFound
from tusk.pipelines.spec import CronInput, Input, PfsInput, PipelineSpec, parse_spec
from tusk.pipelines.support import check_supported
from tusk.storage.metadata import PipelineRow, PipelineVersionRow, RepoRow
from tusk.versioning.globs import compile_glob

__all__ = ["check_graph", "check_spec", "own_tick_repos", "tick_repos"]

_KEY = re.compile(r"\$(\d+)")


def _check_key(template: str | None, groups: int, glob: str, where: str) -> None:
    for m in _KEY.finditer(template or ""):
        n = int(m.group(1))
        if n < 1 or n > groups:
            raise InvalidArgument(f"{where}: ${n} refers to a capture group the glob {glob!r} does not have "
                                  f"(it has {groups}; put the part to match in parentheses, e.g. /(*).csv)")


def _check_pfs(pfs: PfsInput, where: str) -> None:
    try:
        glob = compile_glob(pfs.glob)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}.glob: {exc}") from None
    _check_key(pfs.join_on, glob.group_count, pfs.glob, f"{where}.join_on")
    _check_key(pfs.group_by, glob.group_count, pfs.glob, f"{where}.group_by")


def _check_input(inp: Input, where: str) -> None:
    if inp.pfs is not None:
        _check_pfs(inp.pfs, f"{where}.pfs")
        return
    if inp.cron is not None:
        return
    kind = next(k for k in ("cross", "union", "join", "group") if getattr(inp, k) is not None)
    for i, child in enumerate(getattr(inp, kind)):
        here = f"{where}.{kind}[{i}]"
        if kind == "join" and (child.pfs is None or child.pfs.join_on is None):
            raise InvalidArgument(f"{here}: every input of a join needs pfs.join_on (e.g. \"$1\")")
        if kind == "group" and (child.pfs is None or child.pfs.group_by is None):
            raise InvalidArgument(f"{here}: every input of a group needs pfs.group_by (e.g. \"$1\")")
        _check_input(child, here)


def tick_repos(spec: PipelineSpec) -> list[str]:
    return [leaf.tick_repo(spec.name) for leaf in spec.input.leaves() if isinstance(leaf, CronInput)]


def check_spec(spec: PipelineSpec) -> None:
    """What the spec alone shows: fields Tusk cannot honour, globs, capture-group references, tick repos, its
    own output as input."""
    check_supported(spec)
    if spec.input.given():  # (a spout's is not)
        _check_input(spec.input, "input")
    ticks = tick_repos(spec)  # (their names are checked with the spec: PipelineSpec)
    if len(set(ticks)) != len(ticks) or spec.name in ticks:
        raise InvalidArgument(f"pipeline {spec.name}: each cron input needs a tick repo of its own, other than the"
                              " pipeline's output repo")
    if any(leaf.repo == spec.name for leaf in spec.input.leaves() if isinstance(leaf, PfsInput)):
        raise Conflict(f"pipeline {spec.name} cannot read its own output repo")


def own_tick_repos(s: Session, name: str) -> set[str]:
    """The tick repos of every version of pipeline ``name``: the only existing repos its crons may tick."""
    rows = s.scalars(select(PipelineVersionRow.spec_json).join(PipelineRow).where(PipelineRow.name == name))
    return {repo for text in rows for repo in tick_repos(parse_spec(json.loads(text)))}


def _cycle(s: Session, spec: PipelineSpec) -> list[str] | None:
    """A path of pipelines from ``spec`` back to itself through the repos they read, if the spec makes one."""
    reads: dict[str, set[str]] = {}
    for row in s.scalars(select(PipelineRow)):
        version = s.get(PipelineVersionRow, (row.id, row.version))
        if version is not None:
            reads[row.name] = {leaf.repo for leaf in parse_spec(json.loads(version.spec_json)).pfs_leaves()}
    reads[spec.name] = {leaf.repo for leaf in spec.pfs_leaves()}
    path = [spec.name]

    def walk(node: str, seen: set[str]) -> bool:
        for repo in sorted(reads.get(node, ())):
            if repo == spec.name:
                path.append(repo)
                return True
            if repo in reads and repo not in seen:
                seen.add(repo)
                path.append(repo)
                if walk(repo, seen):
                    return True
                path.pop()
        return False

    return path if walk(spec.name, set()) else None


def _port_user(s: Session, spec: PipelineSpec, port: int) -> str | None:
    """The other service pipeline that publishes ``port`` on the host's loopback, if one does."""
    for row in s.scalars(select(PipelineRow).where(PipelineRow.name != spec.name)):
        version = s.get(PipelineVersionRow, (row.id, row.version))
        if version is not None and '"external_port"' in version.spec_json:
            other = parse_spec(json.loads(version.spec_json))
            if other.service is not None and other.service.external_port == port:
                return row.name
    return None


def check_graph(s: Session, spec: PipelineSpec, update: bool) -> list[str]:
    """What the store shows: inputs exist, names are free, no cycle. Returns the tick repos to create."""
    check_spec(spec)
    for leaf in spec.input.leaves():
        if isinstance(leaf, PfsInput) and s.scalar(select(RepoRow.id).where(RepoRow.name == leaf.repo)) is None:
            raise RepoNotFound(f"repo {leaf.repo!r} not found: pipeline {spec.name} reads it; create it first")
    if not update:  # (an update's caller has loaded the pipeline: it exists)
        if s.scalar(select(PipelineRow.id).where(PipelineRow.name == spec.name)) is not None:
            raise AlreadyExists(f"pipeline {spec.name!r} already exists; use `tusk pipeline update`")
        if s.scalar(select(RepoRow.id).where(RepoRow.name == spec.name)) is not None:
            raise AlreadyExists(f"repo {spec.name!r} already exists; a pipeline's output repo takes its name")
    own = own_tick_repos(s, spec.name) if update else set()
    missing = []
    for repo in tick_repos(spec):
        if s.scalar(select(RepoRow.id).where(RepoRow.name == repo)) is None:
            missing.append(repo)
        elif repo not in own:
            raise AlreadyExists(f"repo {repo!r} already exists; a cron input ticks into a repo of its own "
                                "(drop cron.repo, or name a repo that does not exist yet)")
    if spec.service is not None and (other := _port_user(s, spec, spec.service.external_port)) is not None:
        raise Conflict(f"pipeline {spec.name}: service.external_port {spec.service.external_port} is published by "
                       f"pipeline {other} already; give the service another port")
    cycle = _cycle(s, spec)
    if cycle is not None:
        raise Conflict(f"pipelines {' → '.join(cycle)} would form a cycle: each reads the output of the next")
    return missing
