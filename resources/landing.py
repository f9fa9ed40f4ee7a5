"""The landing zone: extracts dropped at `<landing folder>/<extract_date>/<file>`.

Each object of the source catalog reads one landing folder (by default `<system>/<object>`).

Nothing in the landing zone is trusted. A scan sorts every entry under an object's folder into
files to ingest and entries it will not read, each with the rule that decided it:
- ignored: a name the sender uses while a file is not complete yet (`*.part`, `*.tmp`, ...) or a
  hidden name (`.*`, `_*`); configurable, read again once renamed;
- refused: a symbolic link (nothing outside the landing root is ever read), a device, FIFO,
  socket or folder where a file is expected, and every file of a folder that cannot be placed
  in time (a name that is not an extract date `YYYY-MM-DD`, a date before 1970, or a date after
  the platform's own clock plus a tolerance).
The raw layer logs every such decision and quarantines each refusal, so no landed row is lost
without a word.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import DEFAULT_LANDING_ROOT

# Names senders give files they have not finished writing, and hidden or marker files.
DEFAULT_IGNORE = (
    ".*, _*, *.part, *.partial, *.tmp, *.temp, *.crdownload, *.download, *.filepart, *.swp, *~"
)
DEFAULT_FUTURE_TOLERANCE_HOURS = 48  # clock skew and time zones up to UTC+14, with margin
EARLIEST_EXTRACT = dt.date(1970, 1, 1)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Rules of the landing scan, as they appear in `raw/quarantine` and `raw/ingest_log`.
IGNORED_NAME = "landing(ignored_name)"
SYMLINK = "landing(symlink)"
NOT_A_FILE = "landing(not_a_file)"
EXTRACT_FOLDER = "landing(extract_folder)"
FUTURE_FOLDER = "landing(extract_date_in_future)"


@dataclass(frozen=True)
class LandingFile:
    """A regular file in an extract-date folder: the only kind of entry the raw layer reads."""

    path: Path
    relative: str  # the file's name in the lake's lineage columns
    extract_date: dt.date
    size: int
    mtime_ns: int
    ctime_ns: int = 0  # changes with any write, even one that sets the old mtime back

    def unchanged(self) -> bool:
        """Still the regular file the scan saw: not rewritten, replaced or linked since."""
        try:
            st = self.path.lstat()
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns, st.st_ctime_ns) == (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
        )

    def sha256(self) -> str:
        """The content hash, read without following a link swapped in since the scan."""
        digest = hashlib.sha256()
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.relative} is no longer a regular file")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        finally:
            os.close(fd)
        return digest.hexdigest()


@dataclass(frozen=True)
class Skipped:
    """An entry the scan will not read, and why."""

    relative: str
    decision: Literal["ignored", "refused"]
    rule: str
    reason: str
    size: int
    mtime_ns: int
    extract_date: dt.date | None

    def identity(self) -> str:
        """Stands in for a content hash (the entry is never opened): a new size, time, kind or
        reason makes a new decision, the same entry is decided once."""
        text = "\0".join(
            [self.decision, self.rule, self.relative, str(self.size), str(self.mtime_ns)]
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Scan:
    files: list[LandingFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class LandingResource(ConfigurableResource):
    """Where extracts land. Point `root` at your own exports to run the platform on your data."""

    root: str = Field(default=DEFAULT_LANDING_ROOT, description="Landing zone root folder.")
    ignore: str = Field(
        default=DEFAULT_IGNORE,
        description=(
            "Comma-separated name patterns (shell globs) of files and folders that are not "
            "complete deliveries: logged as ignored, read once renamed."
        ),
    )
    future_tolerance_hours: int = Field(
        default=DEFAULT_FUTURE_TOLERANCE_HOURS,
        description=(
            "How far past the platform's clock an extract folder or a timestamp may lie before "
            "it is refused as a date in the future."
        ),
    )

    def patterns(self) -> list[str]:
        return [p.strip() for p in self.ignore.split(",") if p.strip()]

    def latest_allowed(self, now: dt.datetime | None = None) -> dt.datetime:
        """The latest moment a landed date may name: the clock, plus the tolerance."""
        now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
        return now + dt.timedelta(hours=self.future_tolerance_hours)

    def files(self, folder: str, obj: str | None = None) -> list[LandingFile]:
        """Every file of one source object to read, oldest extract first."""
        return self.scan(folder, obj).files

    def scan(self, folder: str, obj: str | None = None, now: dt.datetime | None = None) -> Scan:
        """Every entry under `<root>/<folder>/` (`folder` an object's landing folder, or its
        system with `obj`), sorted into files and skipped entries. No link is followed and
        nothing is opened: only `lstat`."""
        out = Scan()
        root = Path(self.root)
        parts = [*folder.split("/"), *([obj] if obj else [])]
        rel = "/".join(parts)
        base = root.joinpath(*parts)
        for depth in range(1, len(parts) + 1):
            here = root.joinpath(*parts[:depth])
            if here.is_symlink():
                out.skipped.append(self._skip(root, here, "refused", SYMLINK, _link_reason(here)))
                return out
            if not here.is_dir():
                return out
        latest = self.latest_allowed(now).date()
        patterns = self.patterns()
        for day in _entries(base):
            if _matches(day.name, patterns):
                out.skipped.append(self._skip(root, day, "ignored", IGNORED_NAME, _ignored(day)))
                continue
            if day.is_symlink():
                out.skipped.append(self._skip(root, day, "refused", SYMLINK, _link_reason(day)))
                continue
            if not day.is_dir():
                reason = (
                    f"{day.name} lies in {rel}/ itself: a file must sit in an "
                    f"extract-date folder {rel}/YYYY-MM-DD/"
                )
                out.skipped.append(self._skip(root, day, "refused", EXTRACT_FOLDER, reason))
                continue
            extract_date, rule, reason = _place(day.name, latest)
            for path in _entries(day):
                if _matches(path.name, patterns):
                    out.skipped.append(
                        self._skip(root, path, "ignored", IGNORED_NAME, _ignored(path))
                    )
                elif rule:
                    out.skipped.append(
                        self._skip(root, path, "refused", rule, reason, extract_date)
                    )
                elif path.is_symlink():
                    out.skipped.append(
                        self._skip(root, path, "refused", SYMLINK, _link_reason(path), extract_date)
                    )
                elif not stat.S_ISREG(path.lstat().st_mode):
                    out.skipped.append(
                        self._skip(
                            root, path, "refused", NOT_A_FILE, _not_a_file(path), extract_date
                        )
                    )
                else:
                    st = path.lstat()
                    out.files.append(
                        LandingFile(
                            path=path,
                            relative=path.relative_to(root).as_posix(),
                            extract_date=extract_date,
                            size=st.st_size,
                            mtime_ns=st.st_mtime_ns,
                            ctime_ns=st.st_ctime_ns,
                        )
                    )
        return out

    def unread(self, folders: list[str] | tuple[str, ...]) -> list[str]:
        """Entries of the landing root that no object reads: a folder (or file) beside the
        declared landing folders, e.g. an export of an object the catalog does not declare.
        Names the ignore patterns match (`_truth`, hidden, partial) are left out by rule."""
        root = Path(self.root)
        patterns = self.patterns()
        read = {tuple(f.split("/")) for f in folders}
        ancestors = {p[:i] for p in read for i in range(1, len(p))}
        out: list[str] = []

        def walk(parts: tuple[str, ...]) -> None:
            for entry in _entries(root.joinpath(*parts)):
                here = (*parts, entry.name)
                if _matches(entry.name, patterns) or here in read:
                    continue
                if here in ancestors and entry.is_dir() and not entry.is_symlink():
                    walk(here)
                else:
                    out.append("/".join(here) + ("/" if entry.is_dir() else ""))

        walk(())
        return out

    @staticmethod
    def _skip(
        root: Path,
        path: Path,
        decision: Literal["ignored", "refused"],
        rule: str,
        reason: str,
        extract_date: dt.date | None = None,
    ) -> Skipped:
        st = path.lstat()
        return Skipped(
            relative=path.relative_to(root).as_posix(),
            decision=decision,
            rule=rule,
            reason=reason,
            size=st.st_size if stat.S_ISREG(st.st_mode) else 0,
            mtime_ns=st.st_mtime_ns,
            extract_date=extract_date,
        )


def parse_extract_date(name: str) -> dt.date | None:
    """`YYYY-MM-DD` exactly: Python alone would also take `20261101` or `2026-W44-1`."""
    if not _ISO_DATE.fullmatch(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def _place(name: str, latest: dt.date) -> tuple[dt.date | None, str | None, str]:
    """The extract date of a folder, or the rule it breaks and why."""
    date = parse_extract_date(name)
    if date is None:
        return (
            None,
            EXTRACT_FOLDER,
            (
                f"folder {name!r} is not an extract date (YYYY-MM-DD): its files cannot be placed "
                "in time; move them into a dated folder"
            ),
        )
    if date < EARLIEST_EXTRACT:
        return None, EXTRACT_FOLDER, f"folder {name} is before {EARLIEST_EXTRACT}: a mistyped date?"
    if date > latest:
        return (
            None,
            FUTURE_FOLDER,
            (
                f"folder {name} is after the platform's clock ({latest} with the tolerance): a "
                "mistyped date? move its files into the right dated folder"
            ),
        )
    return date, None, ""


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder))
    except OSError:
        return []


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _ignored(path: Path) -> str:
    return (
        f"{path.name} matches an ignored name pattern (a partial, temporary or hidden entry): "
        "it is read once renamed"
    )


def _link_reason(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (
        f"{path.name} is a symbolic link (to {target}): nothing outside the landing root is "
        "read, so links are never followed; copy the file itself into the landing zone"
    )


def _not_a_file(path: Path) -> str:
    mode = path.lstat().st_mode
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return f"{path.name} is {kind} where a file is expected: only regular files are read"
