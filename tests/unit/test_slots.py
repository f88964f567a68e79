"""A worker's slot (tusk.pipelines.slots): its own input files' inodes are reused, nothing else ever is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tusk.pipelines.slots import Slot


def _write(slot: Slot, path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert slot.write(path, [data[:3], data[3:]]) == len(data)


def test_an_input_file_s_inode_is_reused_for_the_next_datum_with_only_its_bytes(tmp_path: Path) -> None:
    slot = Slot(tmp_path / "slot")
    first = slot.pfs / "in" / "a.txt"
    _write(slot, first, b"a much longer first input\n")
    inode = first.stat().st_ino
    slot.reset({"in", "out"})
    assert list((slot.pfs / "in").iterdir()) == [] and (slot.pfs / "in").is_dir()
    second = slot.pfs / "in" / "b.txt"
    _write(slot, second, b"short\n")
    assert second.stat().st_ino == inode and second.read_bytes() == b"short\n"
    slot.remove()
    assert not slot.root.exists()


def test_files_the_code_made_replaced_wrote_linked_or_chmodded_are_deleted_not_reused(tmp_path: Path) -> None:
    slot = Slot(tmp_path / "slot")
    inputs = slot.pfs / "in"
    for name in ("replaced", "linked", "chmodded", "written"):
        _write(slot, inputs / name, b"ours")
    (inputs / "replaced").unlink()
    (inputs / "replaced").write_bytes(b"the code's")
    os.link(inputs / "linked", slot.pfs / "out-link")
    (inputs / "chmodded").chmod(0o600 if (inputs / "chmodded").stat().st_mode & 0o777 != 0o600 else 0o640)
    time.sleep(0.02)  # past the coarsest change-time tick (4 ms)
    with (inputs / "written").open("r+b") as fh:
        fh.write(b"OURS")  # the same size, the same inode: written by the code
    (slot.pfs / "out").mkdir()
    (slot.pfs / "out" / "result").write_bytes(b"output")
    slot.reset({"in", "out"})
    assert list(inputs.iterdir()) == [] and list((slot.pfs / "out").iterdir()) == []
    assert not (slot.pfs / "out-link").exists()  # not a directory the next datum keeps: gone
    assert list((slot.root / ".spare").iterdir()) == []  # none of them is kept for reuse
    _write(slot, inputs / "next", b"next")
    assert (inputs / "next").read_bytes() == b"next"
