"""CreatePipelineRequest's flags in a spec file (python-pachyderm and `pachctl create pipeline` JSON carry them):
`"update": true` updates the pipeline when it exists, `"reprocess": true` then runs every datum again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tusk.sdk import Client


def spec(word: str, **flags: Any) -> dict[str, Any]:
    return {"pipeline": {"name": "say"}, "transform": {"cmd": ["sh", "-c", f"echo {word} > /pfs/out/$(basename $d)"],
            "env": {"d": "/pfs/data"}}, "input": {"pfs": {"repo": "data", "glob": "/*"}}, **flags}


def test_update_and_reprocess_in_the_spec(tmp_path: Path) -> None:
    with Client(home=tmp_path / "home") as c:
        c.create_repo("data")
        c.put_file("data@master:/a", b"x")
        c.create_pipeline(spec("one", update=True))  # nothing to update: created
        assert c.inspect_pipeline("say").version == 1
        c.create_pipeline(spec("two", update=True))  # exists: a new version (the transform changed)
        assert c.inspect_pipeline("say").version == 2
        assert c.list_jobs("say")[0].datums_processed == 1
        c.create_pipeline(spec("two", update=True))  # the same transform: nothing to run again
        assert c.list_jobs("say")[0].datums_processed == 0
        c.create_pipeline(spec("two", update=True, reprocess=True))
        job = c.list_jobs("say")[0]
        assert (job.pipeline_version, job.datums_processed) == (4, 1)
        assert "update" not in c.inspect_pipeline("say").spec  # flags of the request, not of the version
