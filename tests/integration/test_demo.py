"""`tusk demo`: the census-income story, end to end, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Backend
from tusk.demo import find_census_data, run_demo


def test_census_story_end_to_end(backend: Backend, tmp_path: Path) -> None:
    lines: list[str] = []
    data = find_census_data(Path(__file__).resolve())
    assert data is not None, "examples/census-income/uci ships a copy of the UCI files"
    client = run_demo(lines.append, data, tmp_path / "demo", settings=backend.settings())
    try:
        text = "\n".join(lines)
        assert "no problems" in text

        def accuracy(commit: str) -> float:
            return float(json.loads(client.get_file(f"evaluate@{commit}:/accuracy.json"))["accuracy"])

        models = client.list_models("copy_models")
        assert len(models) == 3  # v1, v2, v3: each with a manifest
        v3, v2, v1 = (m.commit for m in models)
        assert models[0].aliases == ["master", "production", "shadow"]
        for m in models:
            assert {p.split(" ")[0] for p in m.models} == {"/drift", "/income/model.joblib", "/outlier/outlier.joblib"}
        # v2 looked better in validation but was worse on live traffic
        assert models[1].metrics["income.accuracy"] > models[2].metrics["income.accuracy"] + 0.05
        evaluations = [c for c in client.list_commits("evaluate@master") if c.state == "finished"]
        by_model = {}
        for c in reversed(evaluations):
            report = json.loads(client.get_file(f"evaluate@{c.id}:/accuracy.json"))
            by_model.setdefault(report["model_commits"][0], accuracy(c.id))
        assert by_model[v2] < by_model[v1] - 0.05
        assert abs(by_model[v3] - by_model[v1]) < 0.03
        # the rollback re-ran predict over the same requests and reused every v1 output
        history = client.model_history("copy_models@production")
        assert [(m.reason, m.to_commit) for m in history] == [
            ("promote", v3), ("rollback", v1),  # step 8: a hot swap under the HTTP server, and back
            ("promote", v3), ("rollback", v1), ("promote", v2), ("promote", v1)]
        predict_jobs = client.list_jobs("predict")
        rollback_job = next(j for j in predict_jobs if j.input_commits[1]["commit"] == v1
                            and j.created_at > history[1].moved_at)
        assert (rollback_job.datums_processed, rollback_job.datums_skipped) == (0, 4)
        # copy_models gathered the models by reference
        copy_job = client.list_jobs("copy_models")[0]
        assert client.list_datums(copy_job.id)[0].upload_bytes == 0
        # lineage: a prediction → its datum → the model and the request → the raw CSV commit
        trace = client.lineage("predict@master:/batch-1.csv")
        assert {i["repo"] for i in trace["datum"]["inputs"]} == {"requests", "copy_models"}
        raw = client.inspect_commit("income_data@master").id
        manifest = client.model_manifest("copy_models@production")
        assert manifest.training is not None
        assert manifest.training["sources"] == [{"repo": "income_data", "branch": "master", "commit": raw}]
        assert f"income_data@{raw[:8]}" in text
        origin = manifest.upstream["/income/model.joblib"]
        assert origin["repo"] == "train_income" and origin["path"] == "/model.joblib"
        trained = client.model_manifest(f"train_income@{origin['commit']}")
        assert trained.training is not None and trained.training["pipeline"] == "train_income"
        assert trained.training["code"]["git"]["commit"]  # the examples live in this git checkout
        # serving: HTTP answers equal the pipeline's for the same model commit; swaps; drift; logged traffic
        assert "identical to the predict pipeline's output: True" in text
        assert "tusk model rollback: the server answers with v1" in text
        assert "tusk model promote: the server answers with v3" in text
        assert "drift detected True, lowest p-value age" in text
        assert "a request without the age column: 400 the inputs lack 1 of the model's features: age" in text
        assert "ignored and reported: ['fnlwgt', 'vendor_score']" in text
        # explanations: each model's explainer was trained beside it and travels with it
        assert {m.path: m.explainer for m in manifest.models}["/income/model.joblib"] == "/income/explainer.json"
        assert manifest.upstream["/income/explainer.json"]["repo"] == "train_income"
        assert "row 1: v2's top attribution vendor_score=" in text
        top = next(line for line in lines if "is v2's top attribution for" in line)
        assert top.split("over ")[1].startswith("50 rows, vendor_score is v2's top attribution for ")
        assert int(top.split("top attribution for ")[1].split(";")[0]) > 25  # most of v2's predictions
        assert "vendor_score" not in top.split("v1's are ")[1].split(":")[0]  # v1 never saw the column
        logged = client.list_commits("census-requests@master")
        assert logged and {p["repo"] for c in logged for p in c.provenance} == {"copy_models"}
        # server mode: an analyst with a reader token reads, and is refused a promotion
        assert "analyst sees copy_models, predict; reads 500 predictions of batch-1" in text
        assert "analyst tries tusk model promote: refused (analyst is not a writer of copy_models" in text
        assert "ml-lead (cluster admin) reads the production history over HTTP: last move promote to v3" in text
        # predictions carry the model commit behind them
        assert f",{v3}" in client.get_file("predict@master:/batch-1.csv").decode().splitlines()[1]
    finally:
        client.close()
