"""A pipeline's ``transform.image``: which image a version runs, and running a datum in it.

At ``pipeline create`` and ``update`` the spec's ``image`` is resolved to an
imported image (``tusk image import``) and the version records its id (the
config's digest) in its code record, so provenance names the exact image, and
a tag that names other bytes (a new image under the same tag, or another tag)
makes a version whose datums all run again. An image that is not imported is
refused, naming ``tusk image import``, unless:

- a container engine answers here (the ``docker`` runtime runs it), or
- the user opts in to running the command on this machine's software instead:
  ``TUSK_IMAGE_FALLBACK=host`` (a setting), or, per pipeline, the annotation
  ``"metadata": {"annotations": {"tusk.io/image-fallback": "host"}}`` (a
  Pachyderm spec field, so the spec still loads in Pachyderm). The version
  records the fallback, and every job's log says so.

A datum of an imported image runs in bubblewrap with the image's root
filesystem as ``/`` (``SandboxCommand.image_argv``), the image's config
combined with the transform as Pachyderm's worker does
(``tusk.images.config``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tusk.errors import InvalidArgument, TuskError
from tusk.images.config import DEFAULT_PATH, ImageConfig, lookup_user
from tusk.images.rootfs import add_mount_points
from tusk.images.store import ImageStore
from tusk.pipelines.runtimes import DockerRuntime, RunRequest, RunResult, _execute, within_output_limit
from tusk.pipelines.sandbox import SANDBOX_UID, Mount, SandboxCommand
from tusk.pipelines.spec import PipelineSpec

__all__ = ["FALLBACK_ANNOTATION", "ImageRuntime", "image_note", "resolve_image"]

FALLBACK_ANNOTATION = "tusk.io/image-fallback"


def _annotated_fallback(spec: PipelineSpec) -> bool:
    return (spec.annotation(FALLBACK_ANNOTATION) or "").lower() == "host"


def resolve_image(store: ImageStore, spec: PipelineSpec, fallback: bool) -> dict[str, Any] | None:
    """What a version records about its image (None without one); refuses an image it cannot run."""
    ref = spec.transform.image
    if not ref:
        return None
    info = store.resolve(ref)
    if info is not None:
        if not spec.transform.cmd and not info.config.entrypoint:
            raise InvalidArgument(f"transform.cmd: nothing to run: the spec has no cmd and image {ref!r} has no "
                                  "entrypoint")
        return {"ref": ref, "id": info.id, "tags": info.tags}
    if DockerRuntime.available():
        return {"ref": ref, "runtime": "docker"}
    if fallback or _annotated_fallback(spec):
        return {"ref": ref, "fallback": "host"}
    raise InvalidArgument(
        f"transform.image: image {ref!r} is not imported, and no container engine answers here. Import it with "
        f"`tusk image import FILE` (on a machine with Docker: `docker save {ref} -o FILE`; or an OCI layout, "
        "e.g. from `skopeo copy docker://IMAGE oci-archive:FILE`); or, to run the command on this machine's "
        "software instead, set TUSK_IMAGE_FALLBACK=host or the spec's metadata.annotations "
        f"{{\"{FALLBACK_ANNOTATION}\": \"host\"}}")


def image_note(record: Mapping[str, Any] | None) -> str | None:
    """The warning a version's image record calls for (the host fallback), or None."""
    if record and record.get("fallback") == "host":
        return (f"image {record.get('ref')!r} is not imported: the command runs on this machine's software instead "
                "(the fallback asked for); import it with `tusk image import FILE` to run it in the image")
    return None


class ImageRuntime:
    """One datum in an imported image's root filesystem, sandboxed as ``bwrap`` sandboxes (no network)."""

    name = "image"
    network = False

    def __init__(self, sandbox: SandboxCommand, store: ImageStore, image_id: str, cache: Path) -> None:
        self.sandbox = sandbox
        self.store = store
        self.image_id = image_id
        self.cache = cache
        self._root: Path | None = None
        self._config: ImageConfig | None = None

    def prepare(self) -> tuple[Path, ImageConfig]:
        """The image's root filesystem on this host (materialized on first use) and its config."""
        if self._root is None or self._config is None:
            owner = (SANDBOX_UID, SANDBOX_UID) if self.sandbox.privileged else None
            self._config = self.store.config_of(self.image_id)
            self._root = self.store.rootfs(self.image_id, self.cache, owner)
        return self._root, self._config

    def run(self, req: RunRequest) -> RunResult:
        try:
            root, config = self.prepare()
        except TuskError as exc:
            return RunResult(False, None, "", 0.0, str(exc))
        if req.s3 is not None:
            return RunResult(False, None, "", 0.0, "s3 inputs and s3_out are not served inside an imported image "
                                                   "yet (its sandbox has no network and no relay): read the files "
                                                   "at /pfs/<name>, or run without the image")
        cmd = config.command(list(req.cmd))
        if not cmd:
            return RunResult(False, None, "", 0.0, "nothing to run: no transform.cmd and no entrypoint in the image")
        try:
            uid, gid, home = lookup_user(root, req.user or config.user or "0")
        except InvalidArgument as exc:
            return RunResult(False, None, "", 0.0, f"transform.user: {exc}" if req.user else f"the image's User: {exc}")
        pfs = req.pfs_dir
        mounts = [Mount(pfs / name, f"/pfs/{name}") for name in req.input_names if (pfs / name).exists()]
        mounts.append(Mount(pfs / "out", "/pfs/out", writable=True))
        if (pfs / ".tusk").is_dir():
            mounts.append(Mount(pfs / ".tusk", "/pfs/.tusk"))
        mounts += [Mount(host, inside) for host, inside in req.mounts]
        cwd = req.working_dir or config.working_dir or "/"
        owner = (SANDBOX_UID, SANDBOX_UID) if self.sandbox.privileged else None
        with contextlib.suppress(OSError):  # mount points the image lacks (made once, empty, on this host's copy)
            add_mount_points(root, [cwd, *(m.inside for m in mounts if not m.inside.startswith("/pfs/"))], owner)
        self.sandbox.prepare_writable(pfs / "out")
        env = {"PATH": DEFAULT_PATH, "HOME": home} | config.env | dict(req.env) | {"TUSK_PFS": "/pfs", "PFS": "/pfs"}
        stdin = "\n".join(req.stdin) + "\n" if req.stdin else None
        if req.network:  # the host's resolver and hosts, as a container engine shows them
            for name in ("resolv.conf", "hosts"):
                if Path(f"/etc/{name}").is_file():
                    with contextlib.suppress(OSError):
                        (root / "etc").mkdir(exist_ok=True)
                        (root / "etc" / name).touch(exist_ok=True)
                        mounts.append(Mount(Path(f"/etc/{name}"), f"/etc/{name}"))
        argv = self.sandbox.image_argv(root, cmd, mounts, cwd, (uid, gid), network=req.network)
        result = _execute(argv, stdin, env, None, req.timeout, req.accept_return_code, shown=cmd[0])
        return within_output_limit(result, pfs / "out", self.sandbox.limits.output_bytes)
