"""One writer per run folder (:class:`RunLock`), the pre-flight check of disk room, and the address-space cap
for loads (the memory check itself is rnnkit.limits.check_memory).

The lock is ``RUN/.rnnkit.lock`` held with ``flock``: the kernel drops it when the holder dies (kill -9
included), so a lock left by a dead process is simply taken over; the file records pid and host for the
message the second writer gets.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.limits import proc_bytes

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: fall back to an O_EXCL file with a pid check
    fcntl = None

LOCK_NAME = ".rnnkit.lock"


def _holder(path: Path) -> tuple[int | None, str]:
    """(pid, host) recorded in a lock file, (None, "") when unreadable."""
    try:
        with open(path, "rb") as f:
            parts = f.read(300).decode("utf-8", "replace").split()
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None, ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def prepare_folder(path, what: str = "run folder", option: str = "--out") -> Path:
    """Create ``path`` (and parents) as a folder; UserError when it is a file or cannot be created (the
    messages name ``option``, the command-line option that chose the folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, expected a folder (give the run folder, or another {option})")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {what} {path}: {exc.strerror or exc}; choose another {option}") from None
    return path


class RunLock:
    """``with RunLock(run_dir):`` -- refuse (UserError, exit 2) while another process writes ``run_dir``.

    Creating the lock file is also the check that the folder is writable (a read-only folder fails here,
    before any training). ``stale`` is the pid of a dead holder whose lock was taken over, else None.
    """

    def __init__(self, run_dir, what: str = "run folder", optional: bool = False):
        self.run_dir = Path(run_dir)
        self.optional = optional  # a reader (export): a folder nobody can write needs no lock
        self.path = self.run_dir / LOCK_NAME
        self.what = what
        self.fd: int | None = None
        self.stale: int | None = None
        self.created = False  # the folder did not exist: removed again on release if still empty

    def _refuse(self, pid, host) -> None:
        who = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") if pid else \
            "another process"
        raise UserError(f"{self.what} {self.run_dir} is in use by {who} (lock {self.path}); wait for it to finish, "
                        "stop it, or choose another folder")

    def acquire(self) -> "RunLock":
        self.created = not self.run_dir.exists()
        prepare_folder(self.run_dir, self.what)
        for _ in range(20):  # retried only when the file was replaced between open and lock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                if self.optional and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    return self  # nobody can train in a folder nobody can write
                raise UserError(f"{self.what} {self.run_dir} is not writable ({exc.strerror or exc}); check its "
                                "permissions or choose another --out") from None
            if fcntl is None:  # pragma: no cover
                self.fd = fd
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self._refuse(*_holder(self.path))
                raise UserError(f"cannot lock {self.what} {self.run_dir}: {exc.strerror or exc}") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                break
            os.close(fd)  # the previous holder removed the file as we opened it: lock the new one
        else:  # pragma: no cover
            raise UserError(f"cannot lock {self.what} {self.run_dir}: its lock file keeps changing")
        pid, _ = _holder(self.path)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            self.stale = pid
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError as exc:
            self.release()
            raise UserError(f"{self.what} {self.run_dir} is not writable ({exc.strerror or exc}); free some space "
                            "or choose another --out") from None
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # before closing: whoever locks next checks the inode and recreates it
        except OSError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None
        if self.created:  # a run refused before writing anything leaves no empty folder behind
            try:
                self.run_dir.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class LockScope:
    """``with LockScope() as locks: ... out = locks.hold(out) ...`` -- lock run folders as a command learns
    them (after its inputs are checked) and release them all when the block ends, however it ends."""

    def __init__(self):
        self.locks: list[RunLock] = []

    def hold(self, run_dir, what: str = "run folder", optional: bool = False):
        """Lock ``run_dir`` (UserError if another process holds it) and return it unchanged. ``optional``: a
        reader's lock, skipped when the folder is read-only."""
        lock = RunLock(run_dir, what, optional).acquire()
        self.locks.append(lock)
        if lock.stale:
            import sys

            print(f"note: took over the lock of process {lock.stale}, which is no longer running", file=sys.stderr)
        return run_dir

    def __enter__(self) -> "LockScope":
        return self

    def __exit__(self, *exc) -> None:
        while self.locks:
            self.locks.pop().release()


def checkpoint_bytes(num_params: int, itemsize: int = 4, copies: int = 3) -> int:
    """Size estimate of one checkpoint: the weights plus the optimizer's moments (Adam: 2 more copies)."""
    return int(num_params) * int(itemsize) * int(copies) + (64 << 10)  # + header, metadata, carried state


def check_room(run_dir, nbytes: int, what: str = "run folder") -> None:
    """UserError before training when ``run_dir`` has no room for a checkpoint of ``nbytes`` (the new one
    is written beside the previous one, so twice that is needed)."""
    where = Path(run_dir).absolute()
    while not where.exists() and where != where.parent:  # not created yet: the disk it will be on
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if free < 2 * nbytes:
        raise UserError(f"{what} {run_dir} has {free / 2**20:.1f} MiB free, a checkpoint needs about "
                        f"{2 * nbytes / 2**20:.1f} MiB (two copies during the atomic write); free some space "
                        "or choose another --out")


# -- memory -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def memory_cap(extra_bytes: int):
    """Within the block the process may grow by at most ``extra_bytes`` of address space (RLIMIT_AS): a
    damaged size in a file then fails as MemoryError at once instead of thrashing or the OOM killer."""
    try:
        import resource
    except ImportError:  # pragma: no cover
        yield
        return
    vm = proc_bytes("/proc/self/status", "VmSize")
    if vm is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + int(extra_bytes)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
