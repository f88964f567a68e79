"""Model manifests, loaders, tamper refusal, promotion and rollback (both backends)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sqlalchemy import update

from tests.conftest import BACKENDS, CLI_BACKENDS, Backend, open_backend
from tusk import Client
from tusk.errors import (
    Conflict,
    IntegrityError,
    InvalidArgument,
    ModelNotFound,
    ModelTampered,
    ModelUnloadable,
    ObjectCorrupt,
)
from tusk.models import load_dir
from tusk.storage.content import chunk_key, pack_key
from tusk.storage.metadata import CommitRow
from tusk.versioning.refs import parse_file_ref

X = np.column_stack([np.arange(20.0), np.arange(20.0) ** 2 % 7])
Y = X @ np.array([1.0, 2.0]) + 3.0


def _joblib_bytes(model: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def _regression(scale: float = 1.0) -> LinearRegression:
    return LinearRegression().fit(X, Y * scale)


def _commit_model(c: Client, repo: str = "models", scale: float = 1.0, metrics: dict[str, Any] | None = None,
                  path: str = "/model.joblib") -> str:
    if repo not in {r.name for r in c.list_repos()}:
        c.create_repo(repo)
    with c.modify(f"{repo}@master") as m:
        m.put_bytes(path, _joblib_bytes(_regression(scale)))
        m.put_bytes("/metrics.json", json.dumps(metrics or {"r2": 1.0}).encode())
    return c.inspect_commit(f"{repo}@master").id


def test_every_model_commit_gets_a_manifest_with_raw_hashes_and_metrics(pc: Client) -> None:
    commit = _commit_model(pc, metrics={"r2": 0.97, "n": 20})
    data = pc.get_file("models@master:/model.joblib")
    manifest = pc.model_manifest(f"models@{commit}")
    assert manifest.commit == commit and manifest.repo == "models" and manifest.origin == "user"
    [entry] = manifest.models
    assert (entry.path, entry.flavor) == ("/model.joblib", "joblib")
    model_file = manifest.file("/model.joblib")
    assert model_file.blake3 == blake3.blake3(data).hexdigest()
    assert model_file.sha256 == hashlib.sha256(data).hexdigest()
    assert model_file.md5 == hashlib.md5(data).hexdigest()
    assert model_file.size == len(data)
    assert manifest.metrics == {"/metrics.json": {"r2": 0.97, "n": 20}}
    assert manifest.training is None  # committed by hand
    assert manifest.created_at
    [info] = pc.list_models("models")
    assert info.aliases == ["master"] and info.metrics == {"r2": 0.97, "n": 20}


def test_commits_without_model_files_get_no_manifest(pc: Client) -> None:
    pc.create_repo("data")
    pc.put_file("data@master:/rows.csv", b"a,b\n1,2\n")
    assert pc.list_models() == []
    with pytest.raises(ModelNotFound, match="holds no model file"):
        pc.model_manifest("data@master")
    with pytest.raises(ModelNotFound):
        pc.promote_model("data@master", "production")


def test_manifest_follows_changes_and_reuses_hashes_of_unchanged_files(pc: Client) -> None:
    first = _commit_model(pc)
    pc.put_file("models@master:/metrics.json", b'{"r2": 0.5}')
    second = pc.model_manifest("models@master")
    assert second.commit != first
    assert second.file("/model.joblib") == pc.model_manifest(f"models@{first}").file("/model.joblib")
    assert second.metrics == {"/metrics.json": {"r2": 0.5}}
    pc.put_file("models@master:/notes.txt", b"not a model")
    assert [m.path for m in pc.model_manifest("models@master").models] == ["/model.joblib"]
    pc.delete_file("models@master:/model.joblib")
    with pytest.raises(ModelNotFound):
        pc.model_manifest("models@master")


def test_manifest_of_a_trained_model_records_job_spec_code_inputs_and_sources(pc: Client, tmp_path: Path) -> None:
    pc.create_repo("training")
    pc.put_file("training@master:/xy.csv", "\n".join(f"{a},{b},{c}" for (a, b), c in zip(X, Y, strict=True))
                .encode())
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import json, sys, joblib, numpy as np\n"
        "from sklearn.linear_model import LinearRegression\n"
        "d = np.loadtxt(sys.argv[1] + '/xy.csv', delimiter=',')\n"
        "m = LinearRegression().fit(d[:, :2], d[:, 2])\n"
        "joblib.dump(m, sys.argv[2] + '/model.joblib')\n"
        "open(sys.argv[2] + '/metrics.json', 'w').write(json.dumps({'r2': m.score(d[:, :2], d[:, 2])}))\n")
    spec = {"pipeline": {"name": "train"}, "transform": {"cmd": [sys.executable, "train.py", "/pfs/training",
                                                                  "/pfs/out"]},
            "input": {"pfs": {"repo": "training", "glob": "/"}}}
    (code / "train.json").write_text(json.dumps(spec))
    pc.create_pipeline(code / "train.json")
    manifest = pc.model_manifest("train@master")
    training = manifest.training
    assert training is not None
    job = pc.list_jobs("train")[0]
    raw = pc.inspect_commit("training@master").id
    assert training["job"] == job.id and training["pipeline"] == "train" and training["pipeline_version"] == 1
    assert training["transform"]["cmd"][1:] == ["train.py", "/pfs/training", "/pfs/out"]
    assert training["inputs"] == [{"name": "training", "repo": "training", "branch": "master", "commit": raw}]
    assert training["sources"] == [{"repo": "training", "branch": "master", "commit": raw}]
    assert training["code"]["dir"] == str(code) and len(training["code"]["digest"]) == 64
    assert training["code"]["files"] == 2 and training["code"]["git"] is None  # not a git work tree
    assert manifest.metrics["/metrics.json"]["r2"] == pytest.approx(1.0)
    assert manifest.global_id == job.global_id
    loaded = pc.load_model("train@master")
    assert loaded.predict([[1.0, 1.0]])[0] == pytest.approx(6.0)


# -- loaders -------------------------------------------------------------------------------------------------


def test_loads_pickle_joblib_onnx_mlflow_and_python_class_models(pc: Client, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    pc.create_repo("zoo")
    clf = LogisticRegression().fit(X, (Y.mean() < Y).astype(int))
    mlflow_dir = tmp_path / "mlflow-model"
    import mlflow.sklearn

    mlflow.sklearn.save_model(_regression(2.0), str(mlflow_dir),
                              serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE)
    with pc.modify("zoo@master") as m:
        m.put_bytes("/sk/model.pkl", pickle.dumps(_regression()))
        m.put_bytes("/jl/model.joblib", _joblib_bytes(clf))
        m.put_bytes("/onnx/model.onnx", to_onnx(_regression(), X[:1].astype(np.float32)).SerializeToString())
        for f in mlflow_dir.rglob("*"):
            if f.is_file():
                m.put_file(f"/mlflow/{f.relative_to(mlflow_dir).as_posix()}", f)
        m.put_bytes("/py/tusk-model.yaml", b"class: doubler.py:Doubler\n")
        m.put_bytes("/py/doubler.py", b"from pathlib import Path\n"
                                      b"class Doubler:\n"
                                      b"    def load(self, model_dir):\n"
                                      b"        self.k = float(Path(model_dir, 'k.txt').read_text())\n"
                                      b"    def predict(self, x):\n"
                                      b"        return [self.k * sum(row) for row in x]\n")
        m.put_bytes("/py/k.txt", b"2\n")
    manifest = pc.model_manifest("zoo@master")
    assert {(e.path, e.flavor) for e in manifest.models} == {
        ("/sk/model.pkl", "sklearn"), ("/jl/model.joblib", "joblib"), ("/onnx/model.onnx", "onnx"),
        ("/mlflow", "mlflow"), ("/py", "python")}
    assert set(manifest.model("/py").files) == {"/py/tusk-model.yaml", "/py/doubler.py", "/py/k.txt"}
    row = [[1.0, 1.0]]
    assert pc.load_model("zoo@master:/sk/model.pkl").predict(row)[0] == pytest.approx(6.0)
    assert list(pc.load_model("zoo@master:/jl/model.joblib").predict(X[:2])) == list(clf.predict(X[:2]))
    onnx = pc.load_model("zoo@master:/onnx/model.onnx")
    assert float(np.ravel(onnx.predict(row))[0]) == pytest.approx(6.0, rel=1e-5)
    assert onnx.n_features == 2
    assert float(np.ravel(pc.load_model("zoo@master:/mlflow").predict(np.array(row)))[0]) == pytest.approx(12.0)
    assert pc.load_model("zoo@master:/py").predict(row) == [4.0]
    with pytest.raises(ModelNotFound, match="holds 5 models"):
        pc.load_model("zoo@master")


def test_a_flavor_without_loader_is_versioned_but_not_loaded(pc: Client) -> None:
    pc.create_repo("torch")
    pc.put_file("torch@master:/weights.pt", b"\x80\x02not really torch")
    assert pc.model_manifest("torch@master").models[0].flavor == "torch"
    with pytest.raises(ModelUnloadable, match="no loader"):
        pc.load_model("torch@master")


# -- tamper refusal ------------------------------------------------------------------------------------------


def test_a_model_whose_stored_bytes_changed_is_refused(pc: Client) -> None:
    _commit_model(pc)
    manifest = pc.model_manifest("models@master")
    node = pc.services.files.lookup(parse_file_ref("models@master:/model.joblib"))
    assert node is not None and node.file is not None
    ref = node.file.chunks[0]
    objects = pc.services.ctx.objects
    key = pack_key(ref.pack) if ref.pack else chunk_key(ref.digest)
    stored = objects.get(key)
    objects.put(key, stored[:-1] + bytes([stored[-1] ^ 1]))
    pc.services.ctx.content._known.clear()
    with pytest.raises(IntegrityError, match=r"model\.joblib"):  # the whole file is hashed against the manifest
        pc.load_model("models@master")
    with pytest.raises(ObjectCorrupt, match=r"model\.joblib"):  # plain reads check each chunk
        pc.get_file("models@master:/model.joblib")
    with pytest.raises(IntegrityError):
        pc.verify_model(f"models@{manifest.commit}")


def test_a_large_model_is_read_into_one_buffer_and_refused_when_a_middle_chunk_changed(pc: Client,
                                                                                       tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    xs = np.random.default_rng(1).random((120_000, 8))  # its training array, kept in the model: ~7.7 MB
    model = KNeighborsClassifier(n_neighbors=1).fit(xs, (xs[:, 0] > 0.5).astype(int))
    blob = _joblib_bytes(model)
    pc.create_repo("models")
    pc.put_file("models@master:/model.joblib", blob)
    _, _, files = pc.services.models.read_verified("models@master", only_model=True)
    assert isinstance(files["/model.joblib"], memoryview) and files["/model.joblib"] == blob  # one buffer, no join
    loaded = pc.load_model("models@master")
    assert list(loaded.predict(xs[:50])) == list(model.predict(xs[:50]))
    owner = loaded.impl._fit_X
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    assert isinstance(owner, memoryview)  # its training array is a view of the verified buffer, not a copy
    pc.export_model("models@master", tmp_path / "export")
    assert (tmp_path / "export" / "model.joblib").read_bytes() == blob
    assert pc.verify_model("models@master").commit == pc.inspect_commit("models@master").id

    node = pc.services.files.lookup(parse_file_ref("models@master:/model.joblib"))
    assert node is not None and node.file is not None and len(node.file.chunks) > 4
    ref = node.file.chunks[len(node.file.chunks) // 2]
    objects = pc.services.ctx.objects
    key = chunk_key(ref.digest) if ref.pack is None else pack_key(ref.pack)
    stored = objects.get(key)
    at = len(stored) // 2 if ref.pack is None else ref.offset + ref.size // 2
    objects.put(key, stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1:])
    pc.services.ctx.content._known.clear()
    with pytest.raises(ModelTampered, match=r"model\.joblib does not match its manifest"):
        pc.load_model("models@master")
    with pytest.raises(ModelTampered, match=r"model\.joblib"):
        pc.verify_model("models@master")


def test_a_model_commit_whose_tree_was_swapped_is_refused_by_its_manifest(pc: Client) -> None:
    good = _commit_model(pc, scale=1.0)
    other = _commit_model(pc, repo="other", scale=-1.0)
    pc.model_manifest(f"models@{good}")
    with pc.services.ctx.db.write() as s:  # someone with database access points the commit at other bytes
        other_tree = s.get(CommitRow, other).tree_digest  # type: ignore[union-attr]
        s.execute(update(CommitRow).where(CommitRow.id == good).values(tree_digest=other_tree))
    with pytest.raises(ModelTampered, match=r"/model\.joblib does not match its manifest"):
        pc.load_model(f"models@{good}")


def test_an_exported_model_is_verified_when_loaded_from_disk(pc: Client, tmp_path: Path) -> None:
    _commit_model(pc)
    dest = tmp_path / "export"
    pc.export_model("models@master", dest)
    assert (dest / "tusk-manifest.json").is_file()
    assert load_dir(dest).predict([[1.0, 1.0]])[0] == pytest.approx(6.0)
    data = (dest / "model.joblib").read_bytes()
    (dest / "model.joblib").write_bytes(_joblib_bytes(_regression(-1.0)))  # a different, valid model
    with pytest.raises(ModelTampered, match="refusing to load"):
        load_dir(dest)
    (dest / "model.joblib").write_bytes(data)
    (dest / "tusk-manifest.json").write_text("{not json")
    with pytest.raises(ModelTampered, match="unreadable"):
        load_dir(dest)
    (dest / "tusk-manifest.json").unlink()
    with pytest.raises(ModelNotFound, match="no model manifest"):
        load_dir(dest)
    assert load_dir(dest, verify=False).manifest is None


# -- promotion and rollback ----------------------------------------------------------------------------------


PREDICT = {
    "pipeline": {"name": "predict"},
    "transform": {"cmd": [sys.executable, "-c",
                          "import os, sys, joblib\n"
                          "m = joblib.load('/pfs/model/model.joblib')\n"
                          "name = os.path.basename(os.environ['rows'])\n"
                          "x = [[float(v) for v in line.split(',')] for line in open(os.environ['rows'])]\n"
                          "open('/pfs/out/' + name, 'w').write(','.join('%.3f' % p for p in m.predict(x)))\n"]},
    "input": {"cross": [{"pfs": {"repo": "rows", "glob": "/*"}},
                        {"pfs": {"repo": "models", "branch": "production", "glob": "/", "name": "model"}}]},
}


def _predict_job(c: Client) -> tuple[int, int]:
    job = c.list_jobs("predict")[0]
    assert job.state == "success", job.reason
    return job.datums_processed, job.datums_skipped


def test_promote_and_rollback_move_the_branch_record_who_and_rerun_readers(pc: Client) -> None:
    v1 = _commit_model(pc, scale=1.0)
    v2 = _commit_model(pc, scale=10.0)
    pc.create_repo("rows")
    with pc.modify("rows@master") as m:
        for i in range(3):
            m.put_bytes(f"/{i}.csv", f"{i},{i}\n".encode())
    pc.promote_model(f"models@{v1}", "production")
    pc.create_pipeline(PREDICT)
    assert _predict_job(pc) == (3, 0)
    assert pc.get_file("predict@master:/1.csv") == b"6.000"

    move = pc.promote_model(f"models@{v2}", "production")
    assert (move.from_commit, move.to_commit, move.reason, move.actor) == (v1, v2, "promote", "tester")
    assert _predict_job(pc) == (3, 0)  # a new model: every prediction is recomputed
    assert pc.get_file("predict@master:/1.csv") == b"60.000"
    pc.put_file("rows@master:/9.csv", b"9,9\n")
    assert _predict_job(pc) == (1, 3)  # new input with the same model: one datum

    back = pc.rollback_model("models@production")
    assert (back.from_commit, back.to_commit, back.reason) == (v2, v1, "rollback")
    assert pc.inspect_commit("models@production").id == v1
    assert pc.get_file("predict@master:/1.csv") == b"6.000"
    processed, skipped = _predict_job(pc)
    assert (processed, skipped) == (1, 3)  # the v1 outputs are reused; only 9.csv had never met v1
    assert [m.reason for m in pc.model_history("models@production")] == ["rollback", "promote", "promote"]
    with pytest.raises(Conflict, match="no earlier model"):
        pc.rollback_model("models@production")


def test_rollback_walks_back_through_promotions_as_a_stack(pc: Client) -> None:
    versions = [_commit_model(pc, scale=float(i)) for i in range(1, 5)]
    for v in versions:
        pc.promote_model(f"models@{v}", "production")
    assert pc.rollback_model("models@production").to_commit == versions[2]
    assert pc.rollback_model("models@production").to_commit == versions[1]
    pc.promote_model(f"models@{versions[3]}", "production")
    assert pc.rollback_model("models@production").to_commit == versions[1]
    assert pc.rollback_model("models@production", steps=1).to_commit == versions[0]
    with pytest.raises(Conflict):
        pc.rollback_model("models@production")


@pytest.fixture(params=CLI_BACKENDS)
def any_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    """A client on each backend and through a server (remote): the note travels the SDK, the API and back."""
    for backend in open_backend(request.param, request, tmp_path):
        with backend.client() as c:
            yield c


def test_promotion_and_rollback_keep_the_note_given_with_them(any_client: Client) -> None:
    c = any_client
    v1, v2 = _commit_model(c, scale=1.0), _commit_model(c, scale=2.0)
    first = c.promote_model(f"models@{v1}", "production", note="  first model that passed the backtest ")
    assert (first.reason, first.note) == ("promote", "first model that passed the backtest")  # trimmed
    second = c.promote_model(f"models@{v2}", "production", note="retrained on October — r² 0.91")
    assert second.note == "retrained on October — r² 0.91"
    back = c.rollback_model("models@production", note="v2 drifts on the night batch")
    assert (back.to_commit, back.reason, back.note) == (v1, "rollback", "v2 drifts on the night batch")
    assert c.promote_model(f"models@{v2}", "staging").note is None  # the note is optional
    assert c.promote_model(f"models@{v1}", "staging", note="   ").note is None  # blank is no note
    history = c.model_history("models@production")
    assert [(m.reason, m.note) for m in history] == [
        ("rollback", "v2 drifts on the night batch"), ("promote", "retrained on October — r² 0.91"),
        ("promote", "first model that passed the backtest")]
    assert all(m.actor == "tester" for m in history)
    assert [m.note for m in c.model_history("models@master")] == [None, None]  # commits carry no note


def test_promoting_the_model_a_branch_already_has_keeps_the_note_and_rolls_back_past_it(pc: Client) -> None:
    v1, v2 = _commit_model(pc, scale=1.0), _commit_model(pc, scale=2.0)
    pc.promote_model(f"models@{v1}", "production")
    pc.promote_model(f"models@{v2}", "production")
    jobs = len(pc.list_jobs())
    again = pc.promote_model(f"models@{v2}", "production", note="reviewed by the risk team")
    assert (again.from_commit, again.to_commit, again.note) == (v2, v2, "reviewed by the risk team")
    assert len(pc.list_jobs()) == jobs  # nothing moved, so nothing ran
    pc.promote_model(f"models@{v2}", "production")  # without a note, nothing to keep: no move recorded
    assert len(pc.model_history("models@production")) == 3
    assert pc.rollback_model("models@production").to_commit == v1  # the confirmation is not a step to undo


def test_a_note_too_long_or_with_control_characters_is_refused_and_nothing_moves(any_client: Client) -> None:
    c = any_client
    v1, v2 = _commit_model(c, scale=1.0), _commit_model(c, scale=2.0)
    c.promote_model(f"models@{v1}", "production")
    c.promote_model(f"models@{v2}", "production")
    assert c.promote_model(f"models@{v1}", "staging", note="x" * 1000).note == "x" * 1000  # the limit itself
    with pytest.raises(InvalidArgument, match="1000") as long:
        c.promote_model(f"models@{v1}", "production", note="x" * 1001)
    assert "\n" not in str(long.value)
    for bad in ("line one\nline two", "red \x1b[31malert", "tab\there", "spoof \u202egnp.exe"):
        with pytest.raises(InvalidArgument, match="control character") as refused:
            c.rollback_model("models@production", note=bad)
        assert "\n" not in str(refused.value)
    with pytest.raises(InvalidArgument, match="control character"):
        c.promote_model(f"models@{v1}", "production", note="\x00")
    assert c.inspect_commit("models@production").id == v2
    assert [m.reason for m in c.model_history("models@production")] == ["promote", "promote"]


def test_moves_recorded_before_notes_existed_survive_the_migration(request: pytest.FixtureRequest,
                                                                   tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from tusk.storage.metadata import Database
    from tusk.storage.metadata._db import _MIGRATIONS, SCHEMA_REVISION

    for name in BACKENDS:
        backend: Backend
        for backend in open_backend(name, request, tmp_path / name):
            with backend.client() as c:
                v1, v2 = _commit_model(c, scale=1.0), _commit_model(c, scale=2.0)
                c.promote_model(f"models@{v1}", "production")
            db = Database(backend.settings().database_url)  # back to the schema before 0010: no note column
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            with db._write_engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0009")
            assert db.current_revision() == "0009"
            assert "note" not in {col["name"] for col in inspect(db._read_engine).get_columns("branch_moves")}
            db.dispose()
            with backend.client() as c:  # opening the store migrates it
                old = c.model_history("models@production")
                assert [(m.reason, m.to_commit, m.note) for m in old] == [("promote", v1, None)]
                assert c.promote_model(f"models@{v2}", "production", note="after the upgrade").note == \
                    "after the upgrade"
                assert c.rollback_model("models@production", note="and back").to_commit == v1
            db = Database(backend.settings().database_url)
            assert db.current_revision() == SCHEMA_REVISION
            db.dispose()


def test_pipeline_input_models_are_verified_against_their_manifest_in_the_datum(pc: Client, tmp_path: Path
                                                                                 ) -> None:
    _commit_model(pc)
    pc.create_repo("rows")
    pc.put_file("rows@master:/a.csv", b"1,1\n")
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(
        "import os\n"
        "from tusk.models import load_dir\n"
        "m = load_dir(os.environ['model'])  # /pfs/model (the local runtime maps /pfs in env, not in code)\n"
        "x = [[float(v) for v in open(os.environ['rows']).read().split(',')]]\n"
        "open(os.environ['TUSK_PFS'] + '/out/a.txt', 'w').write('%s %.1f' % (m.commit, m.predict(x)[0]))\n")
    (code / "score.json").write_text(json.dumps({
        "pipeline": {"name": "score"}, "transform": {"cmd": [sys.executable, "score.py"]},
        "input": {"cross": [{"pfs": {"repo": "rows", "glob": "/*"}},
                            {"pfs": {"repo": "models", "glob": "/", "name": "model"}}]}}))
    pc.create_pipeline(code / "score.json")
    job = pc.list_jobs("score")[0]
    assert job.state == "success", pc.logs("score")
    commit, value = pc.get_file("score@master:/a.txt").decode().split()
    assert commit == pc.inspect_commit("models@master").id and float(value) == pytest.approx(6.0)


def test_backtest_a_candidate_model_on_a_historical_input_commit(pc: Client) -> None:
    """Pinning an input to an old commit (Pachyderm's input.pfs.commit) reruns old inputs with a new model."""
    v1 = _commit_model(pc, scale=1.0)
    pc.create_repo("rows")
    pc.put_file("rows@master:/0.csv", b"1,1\n")
    last_week = pc.inspect_commit("rows@master").id
    pc.put_file("rows@master:/1.csv", b"2,2\n")
    pc.promote_model(f"models@{v1}", "production")
    pc.create_pipeline(PREDICT)
    candidate = _commit_model(pc, scale=10.0)
    pc.promote_model(f"models@{candidate}", "staging")
    backtest = json.loads(json.dumps(PREDICT))
    backtest["pipeline"]["name"] = "backtest"
    backtest["input"]["cross"][0]["pfs"]["commit"] = last_week
    backtest["input"]["cross"][1]["pfs"]["branch"] = "staging"
    pc.create_pipeline(backtest)
    job = pc.list_jobs("backtest")[0]
    assert job.state == "success" and job.datums_processed == 1
    assert [f.path for f in pc.list_files("backtest@master:/")] == ["/0.csv"]
    assert pc.get_file("backtest@master:/0.csv") == b"60.000"  # the candidate, on last week's input
    assert pc.get_file("predict@master:/0.csv") == b"6.000"  # production is untouched
    trace = pc.lineage("backtest@master:/0.csv")["datum"]
    assert {(i["repo"], i["commit"]) for i in trace["inputs"]} == {("rows", last_week), ("models", candidate)}


def test_a_descriptor_naming_code_outside_its_directory_is_ignored_with_a_warning(pc: Client) -> None:
    pc.create_repo("bad")
    with pc.modify("bad@master") as m:
        m.put_bytes("/py/tusk-model.yaml", b"class: ../evil.py:Evil\n")
        m.put_bytes("/evil.py", b"raise SystemExit('never imported')\n")
        m.put_bytes("/model.joblib", _joblib_bytes(_regression()))
    manifest = pc.model_manifest("bad@master")
    assert [m.path for m in manifest.models] == ["/model.joblib"]
    assert any("inside the model's directory" in w for w in manifest.warnings)


def test_a_descriptor_key_tusk_does_not_read_is_named_in_a_warning(pc: Client) -> None:
    pc.create_repo("typo")
    with pc.modify("typo@master") as m:
        m.put_bytes("/py/tusk-model.yaml", b"class: doubler.py:Doubler\nversion: 2\nweights: w.bin\n")
        m.put_bytes("/py/doubler.py", b"class Doubler:\n    def predict(self, x):\n        return x\n")
    manifest = pc.model_manifest("typo@master")
    assert [m.path for m in manifest.models] == ["/py"]  # still loaded: the keys it has are read
    assert any("version, weights are not read" in w for w in manifest.warnings), manifest.warnings
