"""Atomic file writes and JSON files: what every file this package writes goes through.

Every file is written atomically (temporary file in the same folder, ``fsync``, ``os.replace``);
a whole folder is swapped in with :func:`replace_dir`, so a kill at any moment leaves either the
old or the new version, never a mix. Nothing here unpickles.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting and restoring it, which other
    threads could observe, so it is not repeated for every write)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON, atomically; NaN and infinity are refused (they
    are not JSON, and no result of this package may be one)."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError:
        raise ValueError(f"{path}: refusing to write NaN or infinity into a JSON file") from None
    atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | Path) -> Any:
    """Read a JSON file with an error that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def replace_dir(build: Callable[[Path], None], target: str | Path) -> None:
    """Build a folder with ``build(tmp_dir)`` and swap it in for ``target``.

    The old folder is renamed to ``<target>.old`` first and removed only after the new one is
    in place; :func:`resolve_checkpoint_dir` falls back to ``.old`` if a kill came in between.
    A ``.old`` folder is deleted only while ``target`` exists: when an earlier swap was killed
    between its two renames (``target`` missing, ``.old`` the only good copy), it is renamed
    back first. So the last good folder survives any sequence of kills.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(target.name + ".old")
    restore_interrupted_swap(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
    try:
        build(tmp)
        if old.exists() and target.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def restore_interrupted_swap(target: str | Path) -> None:
    """After a kill between :func:`replace_dir`'s renames: ``<target>.old`` back to ``target``;
    a leftover ``.old`` beside an existing ``target`` is removed."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists() and not target.exists():
        os.replace(old, target)
    elif old.exists():
        shutil.rmtree(old)


def remove_temporaries(folder: str | Path, swapped: tuple[str, ...]) -> list[Path]:
    """Delete what killed writes left in ``folder``: :func:`atomic_write`'s ``.NAME.*.tmp``
    files, and :func:`replace_dir`'s ``.NAME.*`` build folders for the folders ``swapped``
    there. Returns what was removed.

    Only call this while no other process writes ``folder`` (a run directory's lock).
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    builds = tuple(f".{name}." for name in swapped)
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.is_symlink() and path.name.startswith(builds):
            shutil.rmtree(path)
        elif path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """``path`` itself, or ``path.old`` when a swap was interrupted after the rename."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        return old
    return path


LOCK_NAME = ".lock"


class FolderLock:
    """An exclusive lock on a folder while one process writes it: ``flock`` on ``FOLDER/.lock``,
    which holds the owner's pid. The operating system releases it when the owner ends, however
    it ends (``kill -9`` included), so a lock left by a killed run is simply taken over.

    Raises (from :meth:`acquire`):
        RuntimeError: another live process holds the folder, named by its pid.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RuntimeError(
                f"{self.folder} is in use by pid {owner} (another run writes it); wait for it "
                "to end or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
