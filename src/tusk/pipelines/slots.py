"""A worker thread's scratch area for one job (its *slot*), reused from one datum to the next.

A datum in a directory of its own made, per datum, four directories and its
input files, then deleted them all. Metadata is what a tiny datum costs: on
this project's ext4 VM a create is ~100 µs, an unlink ~80 µs, and the inode
allocator passes over every inode freed in the last minute or more (it reads
each one's inode table block: ``recently_deleted``), so a job that deletes as
it goes makes each of its own later files slower (30 to 40% of a 1,000-datum job's
CPU went there). A slot keeps its directories, and the input files it wrote
are set aside when a datum is done and written over for the next datum's
inputs (a rename, a write over the old bytes, a truncation at the end): the
inode and its blocks are reused, none is freed.

Only files the slot itself wrote are reused, and only while they are still as
it wrote them (same device, inode, mode, size and change time, one link): a
file the user's code made, replaced, wrote, chmodded or linked elsewhere is
deleted, as before, and never becomes another datum's input. (Inputs are
read-only to the code in the sandbox: only the local runtime's code, which is
not isolated at all, could replace one.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from tusk.storage.buffers import write_all

__all__ = ["Slot"]

_SPARE = ".spare"  # beside pfs/, never under it: the code never sees it
_KEEP = 256  # spare files kept at most (a datum with more inputs than this deletes the rest)
_Identity = tuple[int, int, int, int, int]


def _identity(st: os.stat_result) -> _Identity:
    """What tells the file this slot wrote from one the code put in its place: an inode number freed is often
    the next one given, so the size, the mode and the change time (any create, write or chmod sets it) too."""
    return st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_ctime_ns


class Slot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pfs = root / "pfs"
        self._spare_dir = root / _SPARE
        shutil.rmtree(root, ignore_errors=True)
        self._spare_dir.mkdir(parents=True)
        self.pfs.mkdir()
        self._spares: list[str] = []
        self._ours: dict[str, _Identity] = {}  # path → what stat said of each file as this slot wrote it
        self._count = 0
        self._real: dict[str, str] = {}

    def write(self, target: Path, pieces: Iterable[bytes]) -> int:
        """Write an input file from ``pieces``, over a spare inode when there is one; the bytes written."""
        path = str(target)
        fd = -1
        while self._spares and fd < 0:
            spare = self._spares.pop()
            try:
                os.rename(spare, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(spare)
                continue
            try:
                # not O_TRUNC: on ext4 truncating a file to nothing and writing it again costs ~200 µs (the
                # blocks are freed, then flushed on close: auto_da_alloc); writing over them costs ~7 µs
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if fd < 0:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        total = 0
        try:  # os.write, not a file object: no fstat, seek or flush calls around a small input's one write
            for data in pieces:
                total += write_all(fd, data)
            st = os.fstat(fd)
            if st.st_size > total:  # a spare's old bytes past the new ones
                os.ftruncate(fd, total)
                st = os.fstat(fd)
            self._ours[path] = _identity(st)
        finally:
            os.close(fd)
        return total

    def realpath(self, directory: Path) -> str:
        """``os.path.realpath`` of one of the slot's own directories, found once (a stat per component each
        time, else): they are made by the slot and stay where they are for its life."""
        key = str(directory)
        real = self._real.get(key)
        if real is None:
            real = self._real[key] = os.path.realpath(directory)
        return real

    def clear(self, directory: Path, keep: Collection[str] = ()) -> None:
        """Empty ``directory`` (made when missing), keeping it: the files this slot wrote are set aside for
        reuse, anything else is deleted; its subdirectories named in ``keep`` are emptied and kept."""
        try:
            children = list(os.scandir(directory))
        except FileNotFoundError:
            directory.mkdir(parents=True, exist_ok=True)
            return
        for child in children:
            if child.is_dir(follow_symlinks=False):
                self.clear(Path(child.path))
                if child.name not in keep:
                    with contextlib.suppress(OSError):
                        os.rmdir(child.path)
                continue
            if not self._set_aside(child):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child.path)

    def _set_aside(self, child: os.DirEntry[str]) -> bool:
        written = self._ours.pop(child.path, None)
        if written is None or len(self._spares) >= _KEEP:
            return False
        try:
            st = child.stat(follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or _identity(st) != written:
            return False  # replaced, linked, chmodded or written by the code: not as this slot wrote it any more
        spare = f"{self._spare_dir}/{self._count}"
        self._count += 1
        try:
            os.rename(child.path, spare)
        except OSError:
            return False
        self._spares.append(spare)
        return True

    def reset(self, keep: set[str]) -> None:
        """Ready ``pfs`` for the next datum: the directories named in ``keep`` emptied, any other entry gone."""
        self.clear(self.pfs, keep)

    def remove(self) -> None:
        """The job is done with this slot."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._spares, self._ours = [], {}
