"""Algorithms: published, immutable ``owner/name/X.Y.Z`` functions or pinned models, called with ``.pipe(x)``
(``registry``), each function run in its own sandboxed worker process (``process``, speaking to ``_worker``).
The REST route ``/v1/algo/...`` of the serving app calls them through the services."""
