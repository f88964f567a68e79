"""/docs and /redoc work offline: every asset they load is served by Tusk itself."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from tusk.config import Settings
from tusk.root import create_server_app
from tusk.services import Services


def test_docs_and_redoc_load_only_local_assets(tmp_path: Path) -> None:
    app = create_server_app(Services.open(Settings.for_home(tmp_path / "home")), auth=True, scheduler=False,
                            close_services=True)
    with TestClient(app) as t:
        for page in ("/docs", "/redoc"):
            r = t.get(page)  # open without a token, like the OpenAPI document they render
            assert r.status_code == 200, r.text
            urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", r.text)
            assert urls, r.text
            assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
            for url in urls:
                asset = t.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 0
        for escape in ("/api/static/../app.py", "/api/static/%2e%2e/app.py", "/api/static/..%2fapp.py"):
            r = t.get(escape)
            assert r.status_code in (401, 404) and "create_app" not in r.text, escape
        assert t.get("/api/v1/repos").status_code == 401  # the static prefix opens nothing else
