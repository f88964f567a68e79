"""Container images without a daemon: imported from ``docker save`` archives and OCI layouts, stored in the
object store, and unpacked into root filesystems that the sandbox runs a pipeline's datums in.

``tusk.images.store`` keeps them, ``tusk.images.archive`` reads the two
layouts, ``tusk.images.rootfs`` applies layers, ``tusk.images.config`` says
how an image's config and a pipeline's transform combine (Pachyderm's rules).
"""
