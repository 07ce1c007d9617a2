"""Find dataset files under the data root, downloading missing ones with checksum checks.

Downloads use :mod:`urllib` from the standard library (no extra dependency is needed for a
plain HTTP GET) and :mod:`tqdm` for progress. Archives are opened with :mod:`tarfile` and only
the expected regular-file members are extracted, so no path from the archive is trusted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from pixelrnn.data.errors import DatasetNotFoundError
from pixelrnn.data.root import DATA_ENV_VAR
from pixelrnn.data.sources import RemoteArchive, RemoteFile

CHUNK = 1 << 20


def md5sum(path: str | Path) -> str:
    """MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest`` atomically, checking its MD5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        got = md5sum(tmp)
        if got != md5:
            raise OSError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def existing_path(root: Path, f: RemoteFile) -> Path | None:
    """The file (or an accepted alternative) if it is under ``root``."""
    for rel in (f.path, *f.alternatives):
        if (root / rel).is_file():
            return root / rel
    return None


def _missing_message(dataset: str, root: Path, files: Iterable[RemoteFile], why: str) -> str:
    names = "\n".join(f"  {root / f.path}" for f in files)
    return (
        f"dataset {dataset!r}: files not found under {root} and {why}.\n"
        f"Expected:\n{names}\n"
        f"Put the files there, or point --data-dir / the {DATA_ENV_VAR} environment variable "
        "at a folder that holds them."
    )


def ensure_files(
    dataset: str,
    root: Path,
    files: list[RemoteFile],
    download: bool,
    archive: RemoteArchive | None = None,
) -> list[Path]:
    """Paths of ``files`` under ``root``, downloading the missing ones when allowed.

    Raises:
        DatasetNotFoundError: a file is missing and downloading is off or failed; the message
            lists the expected file names and the environment variable to set.
    """
    missing = [f for f in files if existing_path(root, f) is None]
    if missing:
        if not download:
            raise DatasetNotFoundError(_missing_message(dataset, root, missing, "download=False"))
        try:
            if archive is not None:
                _fetch_archive(archive, root, missing)
            else:
                for f in missing:
                    _fetch_first_mirror(f, root)
        except (OSError, urllib.error.URLError, tarfile.TarError) as e:
            raise DatasetNotFoundError(
                _missing_message(dataset, root, missing, f"the download failed ({e})")
            ) from None
    return [existing_path(root, f) for f in files]  # type: ignore[misc]


def _fetch_first_mirror(f: RemoteFile, root: Path) -> None:
    if not f.urls:
        raise OSError(f"no download address is known for {f.path}")
    errors = []
    for url in f.urls:
        try:
            _fetch(url, root / f.path, f.md5)
            return
        except (OSError, urllib.error.URLError) as e:
            errors.append(f"{url}: {e}")
    raise OSError("; ".join(errors))


def _fetch_archive(archive: RemoteArchive, root: Path, wanted: list[RemoteFile]) -> None:
    target = root / archive.target_dir
    target.mkdir(parents=True, exist_ok=True)
    tar_path = target / Path(archive.url).name
    if not (tar_path.is_file() and md5sum(tar_path) == archive.md5):
        _fetch(archive.url, tar_path, archive.md5)
    with tarfile.open(tar_path, "r:gz") as tar:
        for f in wanted:
            member_name = archive.member_prefix + Path(f.path).name
            member = tar.getmember(member_name)
            if not member.isfile():
                raise tarfile.TarError(f"{member_name} is not a regular file in the archive")
            dest = root / f.path
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:  # type: ignore[union-attr]
                shutil.copyfileobj(src, out)
            if md5sum(tmp) != f.md5:
                os.unlink(tmp)
                raise OSError(f"checksum mismatch for {member_name} in {tar_path}")
            os.replace(tmp, dest)
    tar_path.unlink()
