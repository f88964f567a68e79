"""Small container images for tests, built as ``docker save`` and OCI tools write them (nothing can be pulled
here): a root filesystem of Debian's static busybox, plus files, in layers, with a config."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

# a layer: path → bytes (a file, 0755 when it starts with "#!"), or ("symlink", target), or ("dir",),
# or ("whiteout",) for .wh.NAME, or ("opaque",) for .wh..wh..opq in that directory
Layer = dict[str, Any]


def busybox_layer() -> Layer:
    """/bin/busybox and a link per applet, /etc/passwd and /etc/group with root, nobody and a user 1000."""
    if not Path(BUSYBOX).exists():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    layer: Layer = {"bin/busybox": Path(BUSYBOX).read_bytes(), "tmp": ("dir",), "root": ("dir",)}
    for applet in applets:
        if applet != "busybox":
            layer[f"bin/{applet}"] = ("symlink", "busybox")
    layer["etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" \
                          b"worker:x:1000:1000:worker:/home/worker:/bin/sh\n"
    layer["etc/group"] = b"root:x:0:\nnogroup:x:65534:\nworker:x:1000:\n"
    layer["etc/os-release"] = b"NAME=tusk-test-busybox\n"
    return layer


def _tar(layer: Layer) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layer):
            value = layer[path]
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if isinstance(value, bytes):
                info.size = len(value)
                info.mode = 0o755 if value[:2] == b"#!" or value[:4] == b"\x7fELF" or path.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(value))
                continue
            kind = value[0]
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, value[1]
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, value[1]
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind in ("whiteout", "opaque"):
                parent, _, name = path.rpartition("/")
                info.name = f"{parent}/.wh.{name}".lstrip("/") if kind == "whiteout" else f"{path}/.wh..wh..opq"
                info.size = 0
                info.mode = 0o644
            tar.addfile(info)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_json(layers: list[bytes], env: list[str] | None = None, entrypoint: list[str] | None = None,
                cmd: list[str] | None = None, working_dir: str | None = None, user: str | None = None) -> bytes:
    conf: dict[str, Any] = {"Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if entrypoint is not None:
        conf["Entrypoint"] = entrypoint
    if cmd is not None:
        conf["Cmd"] = cmd
    if working_dir is not None:
        conf["WorkingDir"] = working_dir
    if user is not None:
        conf["User"] = user
    doc = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z", "config": conf,
           "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(t)}" for t in layers]}}
    return json.dumps(doc, sort_keys=True).encode()


def docker_save(dest: Path, tag: str, layers: list[Layer], **config: Any) -> Path:
    """A ``docker save`` archive of the classic layout (``<id>/layer.tar``, ``<config hex>.json``)."""
    tars = [_tar(layer) for layer in layers]
    cfg = config_json(tars, **config)
    names = []
    with tarfile.open(dest, "w") as out:
        for data in tars:
            name = f"{_sha(data)}/layer.tar"
            names.append(name)
            _add(out, name, data)
        _add(out, f"{_sha(cfg)}.json", cfg)
        _add(out, "manifest.json", json.dumps([{"Config": f"{_sha(cfg)}.json", "RepoTags": [tag],
                                                "Layers": names}]).encode())
    return dest


def oci_layout(dest: Path, ref_name: str | None, layers: list[Layer], compress: bool = True, as_tar: bool = False,
               **config: Any) -> Path:
    """An OCI image layout (a directory, or a tar of it), gzip layers by default; ``ref_name`` annotates it."""
    tars = [_tar(layer) for layer in layers]
    cfg = config_json(tars, **config)
    blobs: dict[str, bytes] = {}
    descs = []
    for data in tars:
        blob = gzip.compress(data, mtime=0) if compress else data
        blobs[_sha(blob)] = blob
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else ""),
                      "digest": f"sha256:{_sha(blob)}", "size": len(blob)})
    blobs[_sha(cfg)] = cfg
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": f"sha256:{_sha(cfg)}", "size": len(cfg)},
                           "layers": descs}).encode()
    blobs[_sha(manifest)] = manifest
    annotations = {"org.opencontainers.image.ref.name": ref_name} if ref_name else {}
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{_sha(manifest)}",
         "size": len(manifest), "annotations": annotations}]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": index,
             **{f"blobs/sha256/{h}": b for h, b in blobs.items()}}
    if as_tar:
        with tarfile.open(dest, "w") as out:
            for name, data in files.items():
                _add(out, name, data)
        return dest
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return dest


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def script(text: str) -> bytes:
    return ("#!/bin/sh\nset -e\n" + text.strip() + "\n").encode()
