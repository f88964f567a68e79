"""Print the API's OpenAPI document, or with --write refresh the committed copy (docs/openapi.json).

CI compares the two (tests/integration/test_api.py), so an API change is a deliberate, reviewed diff.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tusk.api import create_app
from tusk.config import Settings
from tusk.services import Services

COPY = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def document() -> str:
    with tempfile.TemporaryDirectory() as home:
        services = Services.open(Settings.for_home(Path(home)))
        try:
            return json.dumps(create_app(services).openapi(), indent=2,
                              sort_keys=True) + "\n"
        finally:
            services.close()


if __name__ == "__main__":
    text = document()
    if "--write" in sys.argv:
        COPY.write_text(text)
        print(f"wrote {COPY}")
    else:
        sys.stdout.write(text)
