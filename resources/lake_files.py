"""The lake as files: listing, reading and rewriting the objects under the lake root, on local
disk or an object store, with the lake's own storage options (`LakeResource.files()`).

Delta tables are read and written through delta-rs (`LakeResource`); this is for what lies
beside and under them: finding every table (including one no contract declares), the text
files an erasure rewrites, and private work files. On an object store it goes through
delta-rs's own object-store handler, so the endpoint, region and credentials are the tables'.
On local disk it walks the folders itself: never into a linked folder, regular files only (a
link would be followed out of the lake, a FIFO would never end), and a private file is written
owner-only.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

# The handler under deltalake.fs.DeltaStorageHandler: that public wrapper's output stream hands
# the handler a pyarrow Buffer where it takes bytes (deltalake 1.6), so writes go to it directly.
from deltalake._internal import DeltaFileSystemHandler
from pyarrow.fs import FileType

DELTA_LOG = "_delta_log"


class LakeFiles:
    """Files under a lake root, by path relative to it (`raw/quarantine`, `.secrets/x.json`)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None, local: bool) -> None:
        self.root = root
        self.local = local
        self._options = storage_options
        self._handler: DeltaFileSystemHandler | None = None

    @property
    def _store(self) -> DeltaFileSystemHandler:
        if self._handler is None:
            self._handler = DeltaFileSystemHandler(self.root, self._options)
        return self._handler

    def _path(self, relative: str) -> Path:
        return Path(self.root) / relative

    # -- finding ---------------------------------------------------------------------------
    def tables(self, skip: Sequence[str] = ()) -> list[str]:
        """Every Delta table under the root (a folder holding `_delta_log`), by relative path,
        sorted; top-level folders named in `skip` are not entered."""
        found: list[str] = []
        pending = [""]
        while pending:
            folder = pending.pop()
            for sub in self._folders(folder):
                name = sub.rsplit("/", 1)[-1]
                if not folder and name in skip:
                    continue
                if self._is_table(sub):
                    found.append(sub)
                else:
                    pending.append(sub)
        return sorted(found)

    def _folders(self, folder: str) -> list[str]:
        if self.local:
            here = self._path(folder)
            if not here.is_dir():
                return []
            return sorted(
                f"{folder}/{e.name}".lstrip("/")
                for e in os.scandir(here)
                if e.is_dir(follow_symlinks=False)
            )
        infos = self._store.get_file_info_selector(folder, True, False)
        return sorted(i.path.strip("/") for i in infos if i.type == FileType.Directory)

    def _is_table(self, folder: str) -> bool:
        if self.local:
            return (self._path(folder) / DELTA_LOG).is_dir()
        return bool(self._store.get_file_info_selector(f"{folder}/{DELTA_LOG}", True, False))

    def walk(self, skip: Sequence[str] = ()) -> Iterator[str]:
        """Every regular file under the root that is not part of a Delta table, by relative
        path; top-level folders named in `skip` are not entered."""
        if self.local:
            yield from self._walk_local(skip)
            return
        infos = self._store.get_file_info_selector("", True, True)
        paths = sorted(i.path.strip("/") for i in infos if i.type == FileType.File)
        tables = {p.rsplit(f"/{DELTA_LOG}/", 1)[0] for p in paths if f"/{DELTA_LOG}/" in p}
        for path in paths:
            parts = path.split("/")
            if parts[0] in skip or parts[0] == DELTA_LOG:
                continue
            if any("/".join(parts[:i]) in tables for i in range(1, len(parts))):
                continue
            yield path

    def _walk_local(self, skip: Sequence[str]) -> Iterator[str]:
        root = Path(self.root)
        for dirpath, dirnames, filenames in os.walk(root):  # never into linked folders
            here = Path(dirpath)
            if here == root:
                dirnames[:] = [d for d in dirnames if d not in skip]
            dirnames[:] = sorted(d for d in dirnames if not (here / d / DELTA_LOG).is_dir())
            for name in sorted(filenames):
                path = here / name
                if _is_regular(path):
                    yield path.relative_to(root).as_posix()

    # -- reading and writing ---------------------------------------------------------------
    def read(self, relative: str) -> bytes:
        if self.local:
            return self._path(relative).read_bytes()
        stream = self._store.open_input_file(relative)
        try:
            return stream.read()
        finally:
            stream.close()

    def write(self, relative: str, data: bytes, *, private: bool = False) -> None:
        """Replace a file whole (readers see the old or the new content, never a part).
        `private`: owner-only on local disk (0600 in a 0700 folder); an object store's access
        is the bucket's."""
        if not self.local:
            stream = self._store.open_output_stream(relative)
            try:
                stream.write(data)
            finally:
                stream.close()
            return
        path = self._path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        if private:
            os.chmod(path.parent, 0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def list(self, folder: str) -> list[str]:
        """The files directly in a folder (none when it does not exist), by relative path."""
        if self.local:
            here = self._path(folder)
            if not here.is_dir():
                return []
            return sorted(
                f"{folder}/{e.name}" for e in os.scandir(here) if e.is_file(follow_symlinks=False)
            )
        infos = self._store.get_file_info_selector(folder, True, False)
        return sorted(i.path.strip("/") for i in infos if i.type == FileType.File)

    def delete(self, relative: str) -> None:
        """Remove a file (nothing when it is not there)."""
        if self.local:
            self._path(relative).unlink(missing_ok=True)
        elif self._store.get_file_info([relative])[0].type != FileType.NotFound:
            self._store.delete_file(relative)

    def delete_folder(self, relative: str) -> None:
        """Remove a folder and everything in it."""
        if self.local:
            shutil.rmtree(self._path(relative), ignore_errors=True)
        else:
            self._store.delete_dir(relative)

    def stat(self, relative: str) -> tuple[int, int]:
        """(size, mtime in ns) of a file; 0 for a modification time the store does not give."""
        if self.local:
            s = self._path(relative).stat()
            return s.st_size, s.st_mtime_ns
        info = self._store.get_file_info([relative])[0]
        return int(info.size or 0), int(info.mtime_ns or 0)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
