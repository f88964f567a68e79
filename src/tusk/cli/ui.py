"""``tusk ui``: open the dashboard on this store (embedded), or on the server the context points at."""

from __future__ import annotations

import threading
import webbrowser

import typer

from tusk.cli._state import say, state
from tusk.errors import InvalidArgument

__all__ = ["ui"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ui(host: str = typer.Option("127.0.0.1", "--host", help="loopback only: the embedded dashboard has no tokens"),
       port: int = typer.Option(0, "--port", "-p", help="0: any free port"),
       no_browser: bool = typer.Option(False, "--no-browser", help="print the URL, do not open a browser")) -> None:
    """Serve the web dashboard on this store until Ctrl-C, and open it in a browser (with TUSK_ADDRESS set: open
    that server's dashboard instead)."""
    client = state.client
    if client.remote:
        url = (client.settings.address or "").rstrip("/") + "/"
        say(f"Tusk dashboard: {url}")
        if not no_browser:
            webbrowser.open(url)
        return
    if host not in _LOOPBACK:
        raise InvalidArgument(f"--host {host}: `tusk ui` serves this store without tokens, so only on loopback; "
                              "to serve others run `tusk server --auth`")
    from tusk.root import create_server_app
    from tusk.root.server import serve_in_thread

    app = create_server_app(client.services, poll=1.0)
    state.quiet_interrupt = True  # Ctrl-C is how the dashboard ends
    with serve_in_thread(app, host, port) as url:
        say(f"Tusk dashboard: {url}/ (Ctrl-C to stop)")
        if not no_browser:
            webbrowser.open(f"{url}/")
        threading.Event().wait()
