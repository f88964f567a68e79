"""The web dashboard: server-rendered pages over the same operations and checks as the API.

``tusk.ui.app.add_ui`` mounts it on the API server's app; ``tusk.ui.pages`` holds one module per area.
"""
