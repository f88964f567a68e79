"""Repos, branches, commits, file trees, diff, provenance, global ids, fsck."""
