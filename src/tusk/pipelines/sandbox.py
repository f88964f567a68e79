"""The sandbox: what user code may see, as whom it runs, and how much it may take.

User code (a pipeline's datum, a published algorithm) runs in bubblewrap with:

- a private root holding only the system directories a program needs
  (``/usr``, ``/bin``, ``/lib*``, ``/sbin``, ``/etc``), Tusk's own Python
  installation (so ``python3`` in a transform has what Tusk has), and the
  mounts the caller names (the datum's inputs read-only, ``/pfs/out``, the
  pipeline's code). Never the store, the database, token files, home or
  temporary directories of the host;
- new pid, network, ipc and uts namespaces (no network at all: an S3-enabled
  pipeline's datum reaches its S3 endpoint through a unix socket bound in,
  relayed to the sandbox's own loopback, ``tusk.pipelines.runtimes``), a private
  ``/tmp``, and an environment made of the variables the caller passes only;
- a user namespace with no capabilities in which further user namespaces are
  disabled (``--disable-userns``): no mount, remount, mknod or unshare inside.

When Tusk runs as root, bubblewrap runs privileged to set up the mounts (a
privileged bwrap can bind any host path), then ``setpriv`` drops to the
unprivileged ``SANDBOX_UID`` with an empty capability bounding set and
``no_new_privs``, and a second, unprivileged bwrap creates the user namespace
in which ``transform.user`` is mapped. Host files are then checked against an
unprivileged uid: ``/etc/shadow`` and other root-only files stay unreadable.
As any other user, one unprivileged bwrap does both steps.

Limits (rlimits, set by ``prlimit`` on the whole tree): address space,
processes, CPU seconds per process and file size; the output's total size is
checked after the run. When the command ends, every process it left behind is
killed (its pid namespace ends) and the log says how many there were.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tusk.config import Limits

__all__ = ["BACKGROUND_NOTE", "SANDBOX_UID", "Limits", "Mount", "SandboxCommand", "resolve_user", "software_paths",
           "system_binds"]

SANDBOX_UID = 65534  # nobody: the host uid user code runs as when Tusk runs as root
_SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
BACKGROUND_NOTE = "[tusk] killed "
_IMAGE_STAGE = "/run/tusk-image"  # where the outer sandbox shows an image's root to the inner one (as root)
# Runs the command, then counts what it left running in the sandbox's pid namespace (all of it is killed as the
# namespace ends). Excluded: pid 1 (bwrap's init), the wrapper's parent (the inner bwrap, or init) and itself.
_WRAPPER = (
    '"$@"; rc=$?; n=0; for p in /proc/[0-9]*; do p=${p#/proc/}; '
    '[ "$p" = 1 ] || [ "$p" = "$PPID" ] || [ "$p" = "$$" ] || n=$((n+1)); done; '
    f'[ "$n" = 0 ] || echo "{BACKGROUND_NOTE}$n process(es) still running when the command ended" >&2; '
    'exit $rc'
)


@dataclass(frozen=True)
class Mount:
    host: Path
    inside: str
    writable: bool = False


def system_binds() -> list[str]:
    """bwrap arguments for the host's system directories, read-only (symlinks such as /bin -> usr/bin kept)."""
    args: list[str] = []
    for name in _SYSTEM:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def software_paths() -> list[str]:
    """Tusk's own Python (the virtualenv, the interpreter it was made from, an editable checkout's ``src``).

    These are software, not data: binding them lets ``python3`` in a transform
    import what Tusk has (scikit-learn, ``tusk.models.load_dir``), wherever
    Python was installed (``/root/.pyenv``, a venv in a CI clone under /tmp).
    """
    package_root = str(Path(__file__).resolve().parents[2])  # .../src (a checkout) or site-packages
    candidates = [sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), package_root]
    system = [f"/{n}" for n in _SYSTEM]
    found: list[str] = []
    for path in sorted({os.path.normpath(p) for p in candidates if os.path.isdir(p)}, key=len):
        if path != "/" and not _under(path, system) and not _under(path, found):
            found.append(path)
    return found


def resolve_user(user: str | None) -> tuple[int, int]:
    """``transform.user`` as (uid, gid) inside the sandbox: a name, ``uid`` or ``uid:gid``; root when unset."""
    if user is None or user in ("", "root"):
        return 0, 0
    name, _, group = user.partition(":")
    try:
        uid = int(name)
        gid = int(group) if group else uid
    except ValueError:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"transform.user {user!r} is not a user here: give a uid (1000) or uid:gid") from None
        uid, gid = entry.pw_uid, int(group) if group.isdigit() else entry.pw_gid
    if not (0 <= uid < 1 << 31 and 0 <= gid < 1 << 31):
        raise ValueError(f"transform.user {user!r} is out of range")
    return uid, gid


@dataclass
class SandboxCommand:
    """Builds the argv that runs ``cmd`` in the sandbox; ``privileged`` is whether Tusk runs as root."""

    bwrap: str
    setpriv: str | None
    prlimit: str | None
    limits: Limits
    privileged: bool

    @classmethod
    def find(cls, limits: Limits | None = None, bwrap: str = "bwrap") -> SandboxCommand | None:
        """The sandbox of this machine, or None when bubblewrap (or, as root, setpriv) is missing."""
        found = shutil.which(bwrap)
        privileged = os.geteuid() == 0
        setpriv = shutil.which("setpriv")
        if found is None or (privileged and setpriv is None):
            return None
        return cls(found, setpriv, shutil.which("prlimit"), limits or Limits.default(), privileged)

    def prepare_writable(self, path: Path) -> None:
        """Let the sandbox's uid write ``path`` (as root, the code runs as SANDBOX_UID on the host)."""
        if self.privileged:
            os.chown(path, SANDBOX_UID, SANDBOX_UID)

    def argv(self, cmd: Sequence[str], mounts: Sequence[Mount], cwd: str, user: tuple[int, int] = (0, 0),
             extra: Sequence[str] = (), network: bool = False) -> list[str]:
        """``network``: share the host's network (a pipeline's ``tusk.io/network: host`` annotation) instead
        of a network namespace of its own with nothing in it."""
        uid, gid = user
        outer = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid",
                 *(() if network else ("--unshare-net",)), "--unshare-ipc", "--unshare-uts", "--hostname", "tusk",
                 *system_binds(),
                 "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        visible = [f"/{n}" for n in _SYSTEM]  # directories bwrap would make itself are 0700: make them 0755
        made: set[str] = {"/tmp"}
        binds = [Mount(Path(p), p) for p in software_paths()] + list(mounts)
        for m in binds:
            for parent in _parents(m.inside):
                if parent not in made and not _under(parent, visible):
                    outer += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            outer += ["--bind" if m.writable else "--ro-bind", str(m.host), m.inside]
            visible.append(m.inside)
        if not _under(cwd, visible):
            outer += ["--perms", "0755", "--dir", cwd]
        outer += ["--chdir", cwd, *extra]
        userns = ["--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid)]
        if self.privileged:
            assert self.setpriv is not None
            chain = [*outer, "--", self.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                     "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
                     self.bwrap, "--die-with-parent", *userns, "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                     "--chdir", cwd, "--"]
        else:
            chain = [*outer, *userns, "--"]
        chain += ["/bin/sh", "-c", _WRAPPER, "tusk-datum", *cmd]
        return self._limited(chain)

    def image_argv(self, rootfs: Path, cmd: Sequence[str], mounts: Sequence[Mount], cwd: str,
                   user: tuple[int, int] = (0, 0), network: bool = False) -> list[str]:
        """The argv that runs ``cmd`` with an image's root filesystem as ``/`` (read-only; ``/tmp`` and ``/pfs``
        are the sandbox's own), ``mounts`` on top, the same namespaces, user mapping and limits as ``argv``.

        Nothing of the host is shown to the code: no system directories, no Python. As root, the outer bwrap
        stages the image and the mounts over the host's system directories (which setpriv and the inner bwrap
        need), and the inner, unprivileged bwrap makes the image the root and binds the staged mounts into it.
        The command runs as it is, not under the shell wrapper of ``argv``: an image need not have a shell.
        """
        uid, gid = user
        common = ["--die-with-parent", "--new-session", "--unshare-pid", *(() if network else ("--unshare-net",)),
                  "--unshare-ipc", "--unshare-uts", "--hostname", "tusk"]
        userns = ["--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(gid)]
        inner_root = ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "0755", "--tmpfs", "/pfs"]
        if self.privileged:
            assert self.setpriv is not None
            stage = _IMAGE_STAGE
            outer = [self.bwrap, *common, *system_binds(), "--proc", "/proc", "--dev", "/dev", "--perms", "1777",
                     "--tmpfs", "/tmp", "--perms", "0755", "--dir", "/run", "--ro-bind", str(rootfs), stage]
            inner = [self.bwrap, "--die-with-parent", *userns, "--ro-bind", stage, "/", "--bind", "/proc", "/proc",
                     "--dev-bind", "/dev", "/dev", *inner_root]
            for i, m in enumerate(mounts):
                staged = f"/run/tusk-mount-{i}"
                outer += ["--bind" if m.writable else "--ro-bind", str(m.host), staged]
                inner += ["--bind" if m.writable else "--ro-bind", staged, m.inside]
            chain = [*outer, "--chdir", "/", "--", self.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                     "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
                     *inner, "--chdir", cwd, "--", *cmd]
        else:
            chain = [self.bwrap, *common, *userns, "--ro-bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
                     *inner_root]
            for m in mounts:
                chain += ["--bind" if m.writable else "--ro-bind", str(m.host), m.inside]
            chain += ["--chdir", cwd, "--", *cmd]
        return self._limited(chain)

    def _limited(self, argv: list[str]) -> list[str]:
        if self.prlimit is None:
            return argv
        lim = self.limits
        flags = []
        if lim.memory_bytes:
            flags.append(f"--as={lim.memory_bytes}")
        if lim.processes:
            # rlimits on processes count the host uid's processes: as another user than root, Tusk's own count
            flags.append(f"--nproc={lim.processes if self.privileged else lim.processes + _own_tasks()}")
        if lim.cpu_seconds:
            flags.append(f"--cpu={lim.cpu_seconds}")
        if lim.file_bytes:
            flags.append(f"--fsize={lim.file_bytes}")
        return [self.prlimit, *flags, "--", *argv] if flags else argv


def _parents(path: str) -> list[str]:
    """``/a/b/c`` -> ``/a``, ``/a/b`` (the directories bwrap must make before binding on ``path``)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _own_tasks() -> int:
    """Processes and threads of this uid (what RLIMIT_NPROC counts), approximately: this process's threads."""
    try:
        return len(os.listdir("/proc/self/task")) + 64
    except OSError:
        return 256
