"""pachctl's data-loading verbs and habits: put file -i / URLs / --untar / --split, the 1.x hyphenated verbs,
list file with a glob, list commit GLOBAL_ID, subscribe commit, list pipeline --spec/--history, draw and
edit pipeline."""

from __future__ import annotations

import http.server
import io
import json
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import Run, cli_runner
from tests.conftest import Backend, open_backend
from tusk.versioning.loading import pieces, records


@pytest.fixture(params=["sqlite-local", "remote"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request.param, request, tmp_path)


@pytest.fixture
def tusk(backend: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    return cli_runner(backend.env | {"TUSK_RUNTIME": "local"}, monkeypatch, capsys)


def _paths(tusk: Run, ref: str) -> dict[str, int]:
    r = tusk("list", "file", ref, "--json")
    assert r.code == 0, r.err
    return {f["path"]: f["size_bytes"] for f in json.loads(r.out)}


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback."""
    root = tmp_path / "web"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- 1. put file: -i, URLs, --untar, --split ---------------------------------------------------------------
def test_put_file_from_urls_and_an_input_list(tusk: Run, tmp_path: Path, web: tuple[Path, str]) -> None:
    root, url = web
    (root / "data").mkdir()
    (root / "data" / "a.txt").write_bytes(b"alpha\n" * 50_000)
    local = tmp_path / "b.txt"
    local.write_text("beta\n")
    listing = tmp_path / "sources.txt"
    listing.write_text(f"{url}/data/a.txt\n\n{local}\n")
    assert tusk("create", "repo", "r").code == 0
    r = tusk("put", "file", "r@master", "-i", str(listing))
    assert r.code == 0, r.err
    assert _paths(tusk, "r@master:/") == {"/data": 300_000, "/b.txt": 5}
    assert tusk("get", "file", "r@master:/data/a.txt").out == "alpha\n" * 50_000  # the URL's path, as pachctl
    r = tusk("put", "file", "r@master:/named.txt", "-f", f"{url}/data/a.txt")
    assert r.code == 0 and _paths(tusk, "r@master:/named.txt") == {"/named.txt": 300_000}
    missing = tusk("put", "file", "r@master:/x", "-f", f"{url}/nope")
    assert missing.code != 0 and "404" in missing.err and "Traceback" not in missing.err
    refused = tusk("put", "file", "r@master:/x", "-f", "ftp://example.com/a")
    assert refused.code != 0 and "http:// and https://" in refused.err
    listed = tusk("put", "file", "r@master", "-i", "-", stdin=f"{local}\n".encode())
    assert listed.code == 0, listed.err


def _tar(entries: dict[str, bytes], gz: bool, evil: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if evil is not None:
            info = tarfile.TarInfo(evil)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def test_untar_unpacks_archives_and_refuses_members_that_escape(tusk: Run, tmp_path: Path,
                                                                web: tuple[Path, str]) -> None:
    root, url = web
    (tmp_path / "a.tar").write_bytes(_tar({"x.txt": b"x", "sub/y.txt": b"yy"}, gz=False))
    (root / "b.tar.gz").write_bytes(_tar({"z.txt": b"zzz"}, gz=True))
    (tmp_path / "plain.txt").write_text("p")
    assert tusk("create", "repo", "r").code == 0
    r = tusk("put", "file", "r@master:/in", "-f", str(tmp_path / "a.tar"), "-f", f"{url}/b.tar.gz",
             "-f", str(tmp_path / "plain.txt"), "--untar")
    assert r.code == 0, r.err
    assert _paths(tusk, "r@master:/in") == {"/in/x.txt": 1, "/in/sub": 2, "/in/z.txt": 3, "/in/plain.txt": 1}
    assert tusk("put", "file", "r@master:/s", "-f", "-", "--untar", stdin=_tar({"t": b"t"}, gz=True)).code == 0
    assert _paths(tusk, "r@master:/s") == {"/s/t": 1}
    for evil in ("../escape.txt", "/etc/abs.txt"):
        (tmp_path / "evil.tar").write_bytes(_tar({"ok.txt": b"ok"}, gz=False, evil=evil))
        bad = tusk("put", "file", "r@master:/evil", "-f", str(tmp_path / "evil.tar"), "--untar")
        assert bad.code != 0 and "escapes" in bad.err and "Traceback" not in bad.err
        assert "/evil" not in _paths(tusk, "r@master:/")  # nothing of it landed
    (tmp_path / "fake.tar").write_text("not a tar")
    bad = tusk("put", "file", "r@master:/f", "-f", str(tmp_path / "fake.tar"), "--untar")
    assert bad.code != 0 and "not a tar archive" in bad.err


def test_split_line_json_csv_into_numbered_pieces(tusk: Run, tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text('id,name\n1,"a,b"\n2,"two\nlines"\n3,c\n')
    (tmp_path / "v.json").write_text('{"a": 1} {"b": [1, 2]}\n[3]\n"s" 12\n')
    (tmp_path / "l.txt").write_text("one\ntwo\nthree\nfour\nfive")
    assert tusk("create", "repo", "r").code == 0
    r = tusk("put", "file", "r@master", "-f", str(tmp_path / "l.txt"), "--split", "line")
    assert r.code == 0, r.err
    assert sorted(_paths(tusk, "r@master:/l.txt")) == [f"/l.txt/{i:016x}" for i in range(5)]
    assert tusk("get", "file", "r@master:/l.txt/0000000000000004").out == "five"
    # --target-file-datums: at most N records a piece; the header is a record like any other by default
    r = tusk("put", "file", "r@master:/users", "-f", str(tmp_path / "users.csv"), "--split", "csv",
             "--target-file-datums", "2")
    assert r.code == 0, r.err
    assert sorted(_paths(tusk, "r@master:/users")) == ["/users/0000000000000000", "/users/0000000000000001"]
    assert tusk("get", "file", "r@master:/users/0000000000000001").out == '2,"two\nlines"\n3,c\n'
    # --header-records 1: the header starts every piece, as Pachyderm shows each piece read
    r = tusk("put", "file", "r@master:/h", "-f", str(tmp_path / "users.csv"), "--split", "csv",
             "--header-records", "1")
    assert r.code == 0 and len(_paths(tusk, "r@master:/h")) == 3
    assert tusk("get", "file", "r@master:/h/0000000000000002").out == "id,name\n3,c\n"
    # json: top-level values; --target-file-bytes closes a piece once it reaches N bytes
    r = tusk("put", "file", "r@master:/j", "-f", str(tmp_path / "v.json"), "--split", "json",
             "--target-file-bytes", "10")
    assert r.code == 0, r.err
    got = [tusk("get", "file", f"r@master:{p}").out for p in sorted(_paths(tusk, "r@master:/j"))]
    assert got == ['{"a": 1}{"b": [1, 2]}', '[3]"s"12']
    # overwrite replaces the directory; --append numbers after what is there
    assert tusk("put", "file", "r@master:/j", "-f", str(tmp_path / "v.json"), "--split", "json").code == 0
    assert len(_paths(tusk, "r@master:/j")) == 5
    assert tusk("put", "file", "r@master:/j", "-f", "-", "--split", "json", "-a", stdin=b"[9]").code == 0
    assert tusk("get", "file", "r@master:/j/0000000000000005").out == "[9]"
    bad = tusk("put", "file", "r@master:/b", "-f", "-", "--split", "json", stdin=b'{"a": ')
    assert bad.code != 0 and "not a sequence of JSON values" in bad.err
    for args, why in ((["--split", "xml"], "unknown --split"), (["--target-file-datums", "2"], "needs --split"),
                      (["--split", "line", "--untar"], "cannot be combined")):
        bad = tusk("put", "file", "r@master:/b", "-f", str(tmp_path / "l.txt"), *args)
        assert bad.code != 0 and why in bad.err


def test_pieces_follow_pachydermss_rule() -> None:
    recs = [b"aaaa", b"bb", b"c", b"dddddd", b"e"]
    assert list(pieces(recs)) == recs
    assert list(pieces(recs, target_datums=2)) == [b"aaaabb", b"cdddddd", b"e"]
    assert list(pieces(recs, target_bytes=5)) == [b"aaaabb", b"cdddddd", b"e"]
    assert list(pieces(recs, target_datums=3, target_bytes=100)) == [b"aaaabbc", b"dddddde"]
    assert list(records(io.BytesIO(b"1 2.5 [1]{}\n\"x\""), "json")) == [b"1", b"2.5", b"[1]", b"{}", b'"x"']
    big = b"[" + b",".join(b"%d" % i for i in range(300_000)) + b"]"
    assert list(records(io.BytesIO(big + b" " + big), "json")) == [big, big]


# -- 2. the 1.x hyphenated verbs ---------------------------------------------------------------------------
def test_hyphenated_1x_verbs_map_to_the_modern_ones(tusk: Run, tmp_path: Path) -> None:
    assert tusk("create-repo", "r", "-d", "from 1.x").code == 0
    listed = tusk("list-repo", "--raw")
    assert listed.code == 0 and json.loads(listed.out)[0]["description"] == "from 1.x"
    assert tusk("put-file", "r", "master", "/a.txt", "-c", stdin=b"stdin data").code == 0  # 1.x reads stdin
    (tmp_path / "b.txt").write_text("bee")
    assert tusk("put-file", "r", "master", "b.txt", "-f", str(tmp_path / "b.txt")).code == 0
    assert tusk("get-file", "r", "master", "a.txt").out == "stdin data"
    assert set(_paths(tusk, "r@master:/")) == {"/a.txt", "/b.txt"}
    assert "/b.txt" in tusk("list-file", "r", "master").out
    commit = tusk("start-commit", "r", "master")
    assert commit.code == 0, commit.err
    assert tusk("put-file", "r", "master", "/c.txt", stdin=b"c").code == 0
    assert tusk("finish-commit", "r", commit.out.strip()).code == 0
    assert tusk("get-file", "r", "master", "/c.txt").out == "c"
    spec = tmp_path / "copy.json"
    spec.write_text('{"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp /pfs/r/* /pfs/out/"]},'
                    ' "input": {"pfs": {"repo": "r", "glob": "/*"}}}')
    assert tusk("create-pipeline", "-f", str(spec)).code == 0
    assert "copy" in tusk("list-pipeline").out
    jobs = json.loads(tusk("list-job", "--raw").out)
    assert jobs and jobs[0]["pipeline"] == "copy"
    assert json.loads(tusk("inspect-job", jobs[0]["id"], "--raw").out)["state"] == "success"
    assert tusk("delete-pipeline", "copy").code == 0
    assert tusk("delete-repo", "r", "-f").code == 0
    assert tusk("list-repo", "--raw").out.strip() == "[]"
    # 1.x flags Tusk cannot honour are refused by name, with the reason
    for args, flag in ((["start-commit", "r", "master", "-p", "abc"], "-p"), (["list-repo", "-p", "x"], "-p"),
                       (["put-file", "r", "master", "/x", "--parallelism", "4"], "--parallelism"),
                       (["delete-repo", "--all"], "--all")):
        bad = tusk(*args)
        assert bad.code != 0 and f"`pachctl {args[0]}`'s {flag} is not supported" in bad.err
    bad = tusk("get-file", "r", "master")
    assert bad.code != 0 and "REPO COMMIT PATH" in bad.err


def test_hyphenated_verbs_are_hidden_from_help(tusk: Run) -> None:
    shown = tusk("--help").out
    assert "put-file" not in shown and "create-repo" not in shown
    assert "Usage: tusk file put" in tusk("put-file", "--help").out


# -- 3. list file with a glob ------------------------------------------------------------------------------
def test_list_file_with_a_glob_lists_the_matches(tusk: Run) -> None:
    assert tusk("create", "repo", "r").code == 0
    for name in ("a1.csv", "a2.csv", "b.txt", "dir/a3.csv"):
        assert tusk("put", "file", f"r@master:/{name}", "-f", "-", stdin=b"x").code == 0
    assert set(_paths(tusk, "r@master:/a*")) == {"/a1.csv", "/a2.csv"}
    assert set(_paths(tusk, "r@master:/**.csv")) == {"/a1.csv", "/a2.csv", "/dir/a3.csv"}
    assert set(_paths(tusk, "r@master:/dir")) == {"/dir/a3.csv"}  # no pattern: the directory, as before
    bad = tusk("list", "file", "r@master:/[")
    assert bad.code != 0 and "no closing ']'" in bad.err


# -- 4. list commit GLOBAL_ID, subscribe commit, list pipeline --spec / --history --------------------------
def test_list_commit_of_a_global_id_and_pipeline_history(tusk: Run, tmp_path: Path) -> None:
    assert tusk("create", "repo", "r").code == 0
    spec = tmp_path / "copy.json"
    doc = {"pipeline": {"name": "copy"}, "transform": {"cmd": ["sh", "-c", "cp /pfs/r/* /pfs/out/"]},
           "input": {"pfs": {"repo": "r", "glob": "/*"}}}
    spec.write_text(json.dumps(doc))
    assert tusk("create", "pipeline", "-f", str(spec)).code == 0
    assert tusk("put", "file", "r@master:/a", "-f", "-", stdin=b"a").code == 0
    head = json.loads(tusk("inspect", "commit", "r@master", "--json").out)
    listed = json.loads(tusk("list", "commit", head["global_id"], "--json").out)
    assert {(c["repo"], c["global_id"]) for c in listed} == {("r", head["global_id"]), ("copy", head["global_id"])}
    assert {c["repo"] for c in json.loads(tusk("list", "commit", "r", "--json").out)} == {"r"}  # a repo, as before
    doc["description"] = "v2"
    spec.write_text(json.dumps(doc))
    assert tusk("update", "pipeline", "-f", str(spec)).code == 0
    specs = tusk("list", "pipeline", "--spec")
    assert specs.code == 0 and json.loads(specs.out)["description"] == "v2"
    history = json.loads(tusk("list", "pipeline", "--history", "1", "--json").out)
    assert [(h["name"], h["version"]) for h in history] == [("copy", 2), ("copy", 1)]
    assert len(json.loads(tusk("list", "pipeline", "--history", "0", "--json").out)) == 1
    assert len(json.loads(tusk("list", "pipeline", "--history", "all", "--json").out)) == 2
    bad = tusk("list", "pipeline", "--history", "some")
    assert bad.code != 0 and "--history takes" in bad.err


def test_subscribe_commit_prints_commits_as_they_land_and_ends_on_ctrl_c(backend: Backend, tmp_path: Path) -> None:
    env = backend.subprocess_env() | {"TUSK_RUNTIME": "local"}
    tusk = [sys.executable, "-m", "tusk"]

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*tusk, *args], input=stdin, capture_output=True, env=env, timeout=60, check=False)

    assert run("create", "repo", "r").returncode == 0
    assert run("put", "file", "r@master:/old", "-f", "-", stdin=b"o").returncode == 0
    timed = run("subscribe", "commit", "r@master", "--raw", "--timeout", "1", "--poll", "0.2")
    assert timed.returncode == 0 and len(timed.stdout.splitlines()) == 1  # the commit already there
    old = json.loads(timed.stdout)["id"]
    since = run("subscribe", "commit", "r@master", "--from", old, "--timeout", "0.5")
    assert since.returncode == 0 and since.stdout == b""
    both = run("subscribe", "commit", "r@master", "--from", old, "--new")
    assert both.returncode != 0 and b"cannot both be given" in both.stderr
    sub = subprocess.Popen([*tusk, "subscribe", "commit", "r@master", "--new", "--raw", "--poll", "0.2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        time.sleep(3)  # (start-up, first look)
        assert run("put", "file", "r@master:/new", "-f", "-", stdin=b"n").returncode == 0
        line = sub.stdout.readline() if sub.stdout else b""
        assert json.loads(line)["repo"] == "r"
        sub.send_signal(signal.SIGINT)
        out, errs = sub.communicate(timeout=30)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0, errs
    assert b"Traceback" not in errs and out == b""


# -- 5. draw pipeline, edit pipeline -----------------------------------------------------------------------
def test_draw_pipeline_and_edit_pipeline(tusk: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for repo in ("images", "labels"):
        assert tusk("create", "repo", repo).code == 0
    specs = tmp_path / "specs.json"
    specs.write_text(
        '{"pipeline": {"name": "edges"}, "transform": {"cmd": ["sh", "-c", "true"]},'
        ' "input": {"pfs": {"repo": "images", "glob": "/*"}}}\n'
        '{"pipeline": {"name": "montage"}, "transform": {"cmd": ["sh", "-c", "true"]},'
        ' "input": {"cross": [{"pfs": {"repo": "edges", "glob": "/"}}, {"pfs": {"repo": "labels", "glob": "/"}}]}}')
    assert tusk("create", "pipeline", "-f", str(specs)).code == 0
    drawn = tusk("draw", "pipeline")
    assert drawn.code == 0, drawn.err
    lines = drawn.out.splitlines()
    assert "| images (repo) |" in lines[1] and "| labels (repo) |" in lines[1]
    assert "   images ──▶ edges" in lines and "   edges ──▶ montage" in lines and "   labels ──▶ montage" in lines
    assert lines.index("   edges ──▶ montage") > next(i for i, x in enumerate(lines) if "edges (pipeline)" in x)
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\nexec {sys.executable} -c "import json, sys; p = sys.argv[1]; '
                      f'd = json.load(open(p)); d[\'description\'] = \'edited\'; json.dump(d, open(p, \'w\'))" "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    r = tusk("edit", "pipeline", "edges")
    assert r.code == 0, r.err
    info = json.loads(tusk("inspect", "pipeline", "edges", "--json").out)
    assert info["version"] == 2 and info["spec"]["description"] == "edited"
    unchanged = tusk("edit", "pipeline", "montage", "--editor", "true")
    assert unchanged.code != 0 and "unchanged" in unchanged.err
    (tmp_path / "bad.sh").write_text('#!/bin/sh\necho \'{"pipeline": {"name": "montage"}, "bogus": 1}\' > "$1"\n')
    (tmp_path / "bad.sh").chmod(0o755)
    invalid = tusk("edit", "pipeline", "montage", "--editor", str(tmp_path / "bad.sh"))
    assert invalid.code != 0 and "bogus" in invalid.err and "Traceback" not in invalid.err
    assert json.loads(tusk("inspect", "pipeline", "montage", "--json").out)["version"] == 1
