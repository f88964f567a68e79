"""One module per dashboard area; each has a ``router`` (see ``tusk.ui.app`` for the order they mount in)."""
