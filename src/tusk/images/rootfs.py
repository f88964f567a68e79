"""An image's layers applied, in order, to one directory: the root filesystem a datum runs in.

Extraction resolves every path as if the root were ``/`` (a chroot): a
symlink in a layer, relative or absolute (``/var/run -> /run``), is followed
inside the root and never to the host, and ``..`` stops at the root. OCI
whiteouts are applied: ``.wh.NAME`` removes ``NAME`` of the layers below,
``.wh..wh..opq`` empties its directory of what the layers below put there.
Device nodes and fifos are skipped (the sandbox gives its own ``/dev``);
setuid, setgid and sticky bits and write bits for group and others are
cleared. Files are owned by ``owner`` when the process may choose owners (the
sandbox's host uid, so that the code reads the image as its owner, as a
container's root does), else by whoever extracts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

from tusk.errors import IntegrityError, InvalidArgument

__all__ = ["MOUNT_POINTS", "add_mount_points", "apply_layer", "open_layer"]

MOUNT_POINTS = ("pfs", "tmp", "proc", "dev", "run")  # what the sandbox mounts over: made when an image lacks them
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40
_MISSING = ".tusk-missing"  # what a path that does not resolve resolves to (never made)


def open_layer(blob: bytes, expected: str, diff_id: str | None, label: str) -> tarfile.TarFile:
    """The layer's tar, once its blob hashes to ``expected`` (and, uncompressed, to ``diff_id``)."""
    got = "sha256:" + hashlib.sha256(blob).hexdigest()
    if got != expected:
        raise IntegrityError(f"{label}: a stored layer does not match its digest ({expected}, read {got}); "
                             "import the image again")
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        raise InvalidArgument(f"{label}: a layer is zstd-compressed, which this Python cannot read; save the "
                              "image with gzip or uncompressed layers (`docker save` does)")
    try:
        return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"{label}: a layer is not a tar archive ({exc})") from None


def _parts(name: str) -> list[str]:
    norm = posixpath.normpath("/" + name).lstrip("/")
    return [p for p in norm.split("/") if p and p != "."]


def _resolve(root: Path, parts: list[str], create: bool) -> Path:
    """``parts`` inside ``root`` as a chroot resolves them, following every symlink (``create``: make missing
    directories, as a layer's file may come before its parent's entry; otherwise a path that does not exist
    resolves to ``root / ".tusk-missing"``, which never does)."""
    current = root
    todo = list(parts)
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            if not create:
                return candidate if not todo else root / _MISSING
            os.mkdir(candidate, 0o755)
            current = candidate
            continue
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            if hops > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links under /{'/'.join(parts)}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            todo = [p for p in target.split("/") if p and p != "."] + todo  # ".." is resolved from current
            continue
        if not stat.S_ISDIR(info.st_mode):
            if not create:
                return candidate if not todo else root / _MISSING
            os.unlink(candidate)  # a file where a later layer puts a directory: the directory wins
            os.mkdir(candidate, 0o755)
        current = candidate
    return current


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _mode(member: tarfile.TarInfo) -> int:
    return member.mode & 0o755 if not member.isdir() else (member.mode & 0o755) | 0o700


def apply_layer(root: Path, tar: tarfile.TarFile, owner: tuple[int, int] | None) -> int:
    """Apply one layer over ``root``; the number of entries written."""
    made: set[str] = set()  # paths this layer wrote: its own whiteouts apply only to the layers below
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    count = 0
    for member in tar:
        parts = _parts(member.name)
        if not parts:
            continue
        rel = "/".join(parts)
        base = parts[-1]
        parent = _resolve(root, parts[:-1], create=True)
        if base == _OPAQUE:
            prefix = "/".join(parts[:-1])
            for child in list(parent.iterdir()) if parent.is_dir() else []:
                if (f"{prefix}/{child.name}" if prefix else child.name) not in made:
                    _remove(child)
            continue
        if base.startswith(_WHITEOUT):
            hidden = base[len(_WHITEOUT):]
            if hidden and hidden not in (".", "..") and "/".join([*parts[:-1], hidden]) not in made:
                _remove(parent / hidden)
            continue
        if member.ischr() or member.isblk() or member.isfifo() or not (
                member.isdir() or member.isreg() or member.issym() or member.islnk()):
            continue
        path = parent / base
        made.add(rel)
        count += 1
        if member.isdir():
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                _remove(path)
            path.mkdir(exist_ok=True)
            dirs.append((path, member))
        elif member.issym():
            _remove(path)
            os.symlink(member.linkname, path)
        elif member.islnk():
            source = _resolve(root, _parts(member.linkname), create=False)
            if not source.is_file() or source.is_symlink():
                raise InvalidArgument(f"a layer hard-links /{rel} to /{member.linkname}, which it does not hold")
            _remove(path)
            os.link(source, path)
        else:
            _remove(path)
            f = tar.extractfile(member)
            assert f is not None
            with f, open(path, "xb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
            os.chmod(path, _mode(member))
            with contextlib.suppress(OSError):
                os.utime(path, (member.mtime, member.mtime))
        if owner is not None:
            os.lchown(path, *owner)
    for path, member in reversed(dirs):  # last: writing children would change a directory's times
        os.chmod(path, _mode(member))
        with contextlib.suppress(OSError):
            os.utime(path, (member.mtime, member.mtime))
    return count


def add_mount_points(root: Path, extra: Iterable[str], owner: tuple[int, int] | None) -> None:
    """The directories the sandbox mounts on (and the image's working directory), where the image lacks them."""
    for name in (*MOUNT_POINTS, *extra):
        path = _resolve(root, _parts(name), create=True)
        if owner is not None:
            os.lchown(path, *owner)

