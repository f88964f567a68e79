"""Images without a daemon: `tusk image import` of `docker save` archives and OCI layouts, and pipelines whose
`image` runs each datum in the image's root filesystem (bubblewrap), with the image's config as Pachyderm's
worker combines it with the transform. Specs are written as Pachyderm's documentation writes them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import cli_runner
from tests.conftest import open_backend
from tests.images import busybox_layer, docker_save, oci_layout, script
from tusk.config import Settings
from tusk.errors import CommitNotFound, Conflict, ImageNotFound, InvalidArgument
from tusk.pipelines.runtimes import BwrapRuntime
from tusk.sdk import Client

pytestmark = pytest.mark.skipif(not BwrapRuntime.available(), reason="needs bubblewrap (user namespaces)")

# uppercases each file, and says where it ran: the image's os-release, its working directory, its user
EDGES = script("""
for f in /pfs/images/*; do
  tr a-z A-Z < "$f" > "/pfs/out/$(basename "$f")"
  echo "$(cat /etc/os-release) cwd=$(pwd) uid=$(id -u) greeting=$GREETING" > "/pfs/out/$(basename "$f").where"
done
""")


def spec(image: str, **transform: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "edges"},
            "description": "A pipeline that performs image edge detection by using the OpenCV library.",
            "transform": {"cmd": ["/script"], "image": image, **transform},
            "input": {"pfs": {"repo": "images", "glob": "/*"}}}


def edges_image(tmp_path: Path, tag: str, body: bytes = EDGES, **config: Any) -> Path:
    return docker_save(tmp_path / f"{uuid.uuid4().hex[:8]}.tar", tag, [busybox_layer(), {"script": body}],
                       env=["PATH=/bin", "GREETING=from-the-image"], **config)


def test_an_image_pipeline_runs_the_script_inside_the_imported_image(client: Client, tmp_path: Path) -> None:
    [info] = client.import_image(edges_image(tmp_path, "pachyderm/opencv:1.0"))
    assert info.tags == ["pachyderm/opencv:1.0"] and info.id.startswith("sha256:") and len(info.layers) == 2
    assert [i.id for i in client.list_images()] == [info.id]
    assert client.inspect_image("docker.io/pachyderm/opencv:1.0").id == info.id  # one image, two spellings
    assert client.inspect_image(info.id[7:19]).id == info.id  # a short id
    client.create_repo("images")
    client.put_file("images@master:/a.txt", b"liberty\n")
    client.put_file("images@master:/b.txt", b"kitten\n")
    created = client.create_pipeline(spec("pachyderm/opencv:1.0"))
    assert created[0].code is not None and created[0].code["image"]["id"] == info.id  # provenance names the bytes
    job = client.list_jobs("edges")[0]
    assert (job.state, job.datums_processed) == ("success", 2), job.reason
    assert client.get_file("edges@master:/a.txt") == b"LIBERTY\n"
    assert client.get_file("edges@master:/b.txt") == b"KITTEN\n"
    # the image's root, not the host's: its os-release, the image's Env; root, in /, as Pachyderm runs it
    where = b"NAME=tusk-test-busybox cwd=/ uid=0 greeting=from-the-image\n"
    assert client.get_file("edges@master:/a.txt.where") == where
    node = client.lineage("edges@master")["commit"]  # lineage names the image the job ran, by its bytes
    assert node["code"]["image"] == {"ref": "pachyderm/opencv:1.0", "id": info.id}


def test_a_tag_change_is_a_new_version_that_reprocesses_with_the_new_code(c: Client, tmp_path: Path) -> None:
    v1 = c.import_image(edges_image(tmp_path, "regression/train:1.0", script(
        'for f in /pfs/images/*; do echo "model-v1 $(cat $f)" > /pfs/out/$(basename $f); done')))[0]
    v2 = c.import_image(edges_image(tmp_path, "regression/train:2.0", script(
        'for f in /pfs/images/*; do echo "model-v2 $(cat $f)" > /pfs/out/$(basename $f); done')))[0]
    assert v1.id != v2.id
    c.create_repo("images")
    c.put_file("images@master:/a", b"x")
    c.put_file("images@master:/b", b"y")
    c.create_pipeline(spec("regression/train:1.0"))
    assert c.get_file("edges@master:/a") == b"model-v1 x\n"
    c.update_pipeline(spec("regression/train:2.0"))  # only the tag changes, as in the workshop's exercise 3
    job = c.list_jobs("edges")[0]
    assert (job.pipeline_version, job.datums_processed, job.datums_skipped) == (2, 2, 0)
    assert c.get_file("edges@master:/a") == b"model-v2 x\n" and c.get_file("edges@master:/b") == b"model-v2 y\n"
    # the same tag imported again with other bytes: the next version names them and reprocesses too
    v3 = c.import_image(edges_image(tmp_path, "regression/train:2.0", script(
        'for f in /pfs/images/*; do echo "model-v3 $(cat $f)" > /pfs/out/$(basename $f); done')))[0]
    info = c.update_pipeline(spec("regression/train:2.0"))[0]
    assert info.code is not None and info.code["image"]["id"] == v3.id
    assert any("names other bytes" in n for n in info.notes), info.notes
    assert c.get_file("edges@master:/a") == b"model-v3 x\n"
    versions = c.pipeline_versions("edges")
    assert [v["code"]["image"]["id"] for v in versions] == [v1.id, v2.id, v3.id]


def test_the_image_config_is_combined_with_the_transform_as_pachyderm_does(c: Client, tmp_path: Path) -> None:
    run = script('echo "$(pwd) $(id -u):$(id -g) $GREETING $HOME $0" > /pfs/out/env')
    archive = docker_save(tmp_path / "app.tar", "team/app:v1", [busybox_layer(), {"app/run": run}],
                          env=["PATH=/bin", "GREETING=image"], entrypoint=["/app/run"], cmd=["ignored"],
                          working_dir="/app", user="worker")
    c.import_image(archive)
    c.create_repo("images")
    c.put_file("images@master:/a", b"x")
    # no cmd: the image's entrypoint runs (its Cmd is not appended), in its WorkingDir, as its User
    c.create_pipeline({"pipeline": {"name": "entry"}, "transform": {"image": "team/app:v1"},
                       "input": {"pfs": {"repo": "images", "glob": "/"}}})
    assert c.get_file("entry@master:/env") == b"/app 1000:1000 image /home/worker /app/run\n"
    # the transform's cmd, user, working_dir and env win over the image's
    c.create_pipeline({"pipeline": {"name": "over"}, "transform": {
        "image": "team/app:v1", "cmd": ["/app/run"], "user": "0", "working_dir": "/tmp", "env": {"GREETING": "spec"}},
        "input": {"pfs": {"repo": "images", "glob": "/"}}})
    assert c.get_file("over@master:/env") == b"/tmp 0:0 spec /root /app/run\n"
    # a user the image does not have is the datum's error, naming the field
    c.create_pipeline({"pipeline": {"name": "nouser"}, "transform": {"image": "team/app:v1", "user": "ghost"},
                       "input": {"pfs": {"repo": "images", "glob": "/"}}})
    job = c.list_jobs("nouser")[0]
    assert job.state == "failure" and "transform.user" in (job.reason or "") and "ghost" in (job.reason or "")


def test_oci_layouts_with_gzip_layers_and_whiteouts(c: Client, tmp_path: Path) -> None:
    lower = busybox_layer() | {"data/keep": b"k", "data/gone": b"g", "old/x": b"x", "old/sub/z": b"z"}
    upper = {"data/gone": ("whiteout",), "old": ("opaque",), "old/y": b"y",
             "script": script("ls /data > /pfs/out/data; ls -R /old > /pfs/out/old")}
    layout = tmp_path / "layout"
    layout.mkdir()
    oci_layout(layout, "registry.example.com:5000/team/wh:2", [lower, upper])
    [info] = c.import_image(layout)
    assert info.tags == ["registry.example.com:5000/team/wh:2"]
    assert [layer.compression for layer in info.layers] == ["gzip", "gzip"]
    c.create_repo("images")
    c.put_file("images@master:/a", b"x")
    c.create_pipeline(spec("registry.example.com:5000/team/wh:2") | {"input": {"pfs": {"repo": "images",
                                                                                         "glob": "/"}}})
    assert c.get_file("edges@master:/data") == b"keep\n"
    assert c.get_file("edges@master:/old").split() == [b"/old:", b"y"]
    # an OCI archive whose ref.name is a bare tag needs a name
    archive = oci_layout(tmp_path / "bare.tar", "3", [lower], as_tar=True, compress=False)
    with pytest.raises(InvalidArgument, match="--tag"):
        c.import_image(archive)
    [named] = c.import_image(archive, tag="team/bare:3")
    assert named.tags == ["team/bare:3"] and named.layers[0].compression == "none"


def test_a_layer_never_writes_outside_its_root(c: Client, tmp_path: Path) -> None:
    target = tmp_path / "host-dir"
    target.mkdir()
    escape = {"evil": ("symlink", str(target)), "up": ("symlink", "../../../../../../../" + str(target))}
    writes = {"evil/owned": b"1", "up/owned2": b"2", "../../../../outside": b"3",
              "script": script("ls / > /pfs/out/root")}
    [info] = c.import_image(docker_save(tmp_path / "evil.tar", "evil/image:1", [busybox_layer(), escape, writes]))
    c.create_repo("images")
    c.put_file("images@master:/a", b"x")
    c.create_pipeline(spec("evil/image:1") | {"input": {"pfs": {"repo": "images", "glob": "/"}}})
    assert list(target.iterdir()) == []  # the links were followed inside the root, never to the host
    assert not (tmp_path.parent / "outside").exists()
    assert b"outside" in c.get_file("edges@master:/root")  # `..` stops at the root
    root = c.services.settings.home / "cache" / "images" / info.id.removeprefix("sha256:") / "rootfs"
    inside = root / target.relative_to("/")  # where both links lead, in the image (under its /tmp)
    assert (inside / "owned").read_bytes() == b"1" and (inside / "owned2").read_bytes() == b"2"
    # a hard link to a file the image does not hold is refused, naming it
    c.import_image(docker_save(tmp_path / "hard.tar", "evil/hard:1", [busybox_layer(), {
        "shadow": ("hardlink", "../../../etc/shadow"), "script": script("true")}]))
    c.create_pipeline(spec("evil/hard:1") | {"pipeline": {"name": "hard"},
                                             "input": {"pfs": {"repo": "images", "glob": "/"}}})
    job = c.list_jobs("hard")[0]
    assert job.state == "failure" and "hard-links /shadow" in (job.reason or "")


def test_an_image_that_is_not_imported_is_refused_unless_the_fallback_is_asked_for(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        c.create_repo("images")
        with pytest.raises(InvalidArgument, match=r"transform\.image.*tusk image import") as refused:
            c.create_pipeline(spec("pachyderm/opencv:1.0", cmd=["sh", "-c", "true"]))
        assert "TUSK_IMAGE_FALLBACK=host" in str(refused.value)
        assert c.list_pipelines() == []  # nothing was created
        annotated = spec("pachyderm/opencv:1.0", cmd=["sh", "-c", "echo host > /pfs/out/ran"]) | {
            "metadata": {"annotations": {"tusk.io/image-fallback": "host"}}}
        info = c.create_pipeline(annotated)[0]
        assert any("runs on this machine's software" in n for n in info.notes), info.notes
        assert info.code is not None and info.code["image"] == {"ref": "pachyderm/opencv:1.0", "fallback": "host"}
    settings = Settings.for_home(tmp_path / "home2", TUSK_IMAGE_FALLBACK="host")
    with Client(settings=settings) as c:
        c.create_repo("images")
        c.put_file("images@master:/a", b"x")
        c.create_pipeline(spec("pachyderm/opencv:1.0", cmd=["sh", "-c", "echo host > /pfs/out/ran"]))
        assert c.get_file("edges@master:/ran") == b"host\n"
        assert any("is not imported" in line for _, _, line in c.logs(pipeline="edges"))


def test_a_tampered_layer_fails_the_job_with_an_integrity_error(c: Client, tmp_path: Path) -> None:
    [info] = c.import_image(edges_image(tmp_path, "team/edges:1"))
    key = "images/blobs/sha256/" + info.layers[1].digest.removeprefix("sha256:")
    c.services.ctx.objects.put(key, b"not the layer")
    c.create_repo("images")
    c.put_file("images@master:/a.txt", b"x\n")
    c.create_pipeline(spec("team/edges:1"))
    job = c.list_jobs("edges")[0]
    assert job.state == "failure" and "does not match its digest" in (job.reason or ""), job.reason
    with pytest.raises(CommitNotFound):  # the output branch did not move
        c.list_files("edges@master")


def test_deleting_an_image_a_pipeline_runs(c: Client, tmp_path: Path) -> None:
    [info] = c.import_image(edges_image(tmp_path, "team/edges:1"))
    c.create_repo("images")
    c.create_pipeline(spec("team/edges:1"))
    with pytest.raises(Conflict, match="pipeline edges version 1"):
        c.delete_image("team/edges:1")
    assert c.delete_image("team/edges:1", force=True) == ["untagged team/edges:1"]
    assert c.list_images()[0].tags == []  # the layers stay for the pipeline
    c.delete_pipeline("edges")
    assert c.delete_image(info.id) == [f"deleted {info.id}"]
    assert c.list_images() == []
    with pytest.raises(ImageNotFound):
        c.inspect_image("team/edges:1")
    assert not [k for k in c.services.ctx.objects.list("images/blobs/")]


def test_the_cli_against_a_server(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    archive = edges_image(tmp_path, "pachyderm/opencv:1.0")
    for backend in open_backend("remote", request, tmp_path):
        run = cli_runner(backend.env, monkeypatch, capsys)
        imported = run("image", "import", str(archive))
        assert imported.code == 0 and "imported pachyderm/opencv:1.0" in imported.out, imported.err
        listed = run("image", "list", "--json")
        assert [i["tags"] for i in listed.json()] == [["pachyderm/opencv:1.0"]]  # type: ignore[union-attr]
        assert "entrypoint" in run("image", "inspect", "pachyderm/opencv:1.0").out
        assert run("create", "repo", "images").code == 0
        assert run("put", "file", "images@master:/a.txt", "-f", "-", stdin=b"abc\n").code == 0
        spec_file = tmp_path / "spec" / "edges.json"
        spec_file.parent.mkdir()
        spec_file.write_text(json.dumps(spec("pachyderm/opencv:1.0")))
        created = run("create", "pipeline", "-f", str(spec_file))
        assert created.code == 0, created.err
        assert run("get", "file", "edges@master:/a.txt").out == "ABC\n"
        missing = run("image", "inspect", "nope:1")
        assert missing.code != 0 and "tusk image import" in missing.err
