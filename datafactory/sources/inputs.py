"""Where a source's bytes come from: a file, a folder, a glob, or a zip read in place (no unpacking).

A user points a source at whatever they downloaded: ``NIKL_DIALOGUE_2021_v1.1.zip``, the unpacked folder,
a folder of several zips, or ``some/dir/*.json``. Every case gives the same list of ``InputFile``.
"""
from __future__ import annotations

import fnmatch
import functools
import glob as globlib
import os
import re
import threading
import unicodedata
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from datafactory.errors import SourceError


def _zip_member_name(info: zipfile.ZipInfo) -> str:
    """Member names from Korean Windows zips are cp949 without the UTF-8 flag; zipfile decodes them as cp437."""
    if info.flag_bits & 0x800:
        return unicodedata.normalize("NFC", info.filename)  # a zip made on a Mac holds decomposed Hangul
    try:
        return info.filename.encode("cp437").decode("cp949")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _as_text(name: str) -> str:
    """A file name as text, the same on every machine. A name whose bytes are not UTF-8 comes from the system as
    surrogates, which no file, column or manifest can hold: a Korean Windows zip unpacked by `unzip` leaves cp949
    bytes (`147.텍스트 윤리검증 데이터`), read as cp949 where they are, else shown with \\x escapes. Hangul from a Mac
    (Finder's names, zips made there) is decomposed (NFD: the "자소 분리" of names sent from macOS): composed (NFC),
    so names, row keys and version ids do not depend on whose disk the files passed through. The file is still
    opened by its real path."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape")
        try:
            name = raw.decode("cp949")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "backslashreplace")
    return unicodedata.normalize("NFC", name)


def _texts(names: list[str]) -> list[str]:
    """``_as_text`` of each name: one check over all of them in the usual case (ASCII names: NIKL's and AIHub's)."""
    if "".join(names).isascii():
        return names
    return list(map(_as_text, names))


class _Archive:
    """One open zip shared by all its members: reopening it per member re-reads the central directory,
    which made a 4,143-file release 130 times slower to read than the same files unpacked. At most ``KEEP_OPEN``
    archives are open in a process, the least recently read closed first: a folder of hundreds of zips (a release
    split in parts) kept every one open and ran out of file handles (macOS allows a process 256 by default)."""

    KEEP_OPEN = 16
    _open: OrderedDict = OrderedDict()  # id -> _Archive, the open ones of this process, the most recent last
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self._zf: zipfile.ZipFile | None = None

    def __getstate__(self):  # a worker process opens the archive again
        return {"path": self.path, "_zf": None}

    def open(self, member: str) -> BinaryIO:
        with _Archive._lock:
            if self._zf is None:
                while len(_Archive._open) >= self.KEEP_OPEN:
                    _Archive._open.popitem(last=False)[1]._close()
                self._zf = zipfile.ZipFile(self.path)
                _Archive._open[id(self)] = self
            else:
                _Archive._open.move_to_end(id(self))
            return self._zf.open(member)

    def _close(self) -> None:  # a member being read stays readable: zipfile closes the file after it
        if self._zf is not None:
            self._zf.close()
            self._zf = None


@dataclass(slots=True)  # not frozen: a 100k-file listing builds 100k of them, and frozen __init__ is 3x slower
class InputFile:
    """One readable input: a plain file, or a member of a zip archive."""

    name: str  # what errors and lineage show: path relative to the source root, or "archive.zip!member"
    path: Path | str  # the file on disk (the archive, for a member); a plain str from folder listings (cheaper)
    member: str | None = None  # the raw member name inside ``path``
    basename: str = field(default="", compare=False)
    archive: _Archive | None = field(default=None, compare=False, repr=False)
    size: int = field(default=0, compare=False)  # bytes on disk (for a member, its unpacked size)
    mtime_ns: int = field(default=0, compare=False)  # of the file on disk (for a member, of the archive)

    def open(self) -> BinaryIO:
        if self.member is None:
            return open(self.path, "rb")
        return (self.archive or _Archive(self.path)).open(self.member)

    def read_bytes(self) -> bytes:
        if self.member is not None:
            with self.open() as f:
                return f.read()
        # os.read rather than a file object: half the cost per file, which counts at 100k files; asks for one byte
        # more than the listing's size and reads on to the end, so a file that grew or shrank since is read whole
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            parts, want = [], self.size + 1
            while part := os.read(fd, want):
                parts.append(part)
                want = 1 << 20
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Listing(Sequence):
    """A folder's input files as columns; the ``InputFile`` objects are made on first use. A no-op build of a
    100k-file release needs only the paths, sizes and mtimes (the listing's digest), and making 100k objects was a
    sixth of its time."""

    __slots__ = ("_files", "basenames", "mtimes", "names", "paths", "sizes")

    def __init__(self, names: list[str], paths: list[str], basenames: list[str], sizes: list[int], mtimes: list[int]):
        self.names, self.paths, self.basenames, self.sizes, self.mtimes = names, paths, basenames, sizes, mtimes
        self._files: list[InputFile] | None = None

    @property
    def files(self) -> list[InputFile]:
        if self._files is None:
            n = len(self.paths)
            self._files = list(map(InputFile, self.names, self.paths, repeat(None, n), self.basenames,
                                   repeat(None, n), self.sizes, self.mtimes))
        return self._files

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, slice):  # a chunk of files for a worker: columns again, 1/20 the cost to pickle
            return Listing(self.names[i], self.paths[i], self.basenames[i], self.sizes[i], self.mtimes[i])
        return self.files[i]

    def __reduce__(self):
        return Listing, (self.names, self.paths, self.basenames, self.sizes, self.mtimes)

    def __iter__(self):
        return iter(self.files)


class _Patterns:
    """A source's name patterns, fnmatch's rules, but the end of a ``PREFIX*SUFFIX`` pattern (an extension) in any
    case: files from Windows are often `DATA.CSV`, `대화.JSON` (they were left out of a folder without a word).
    Those patterns (every shipped kind's) are checked with startswith/endswith, four times faster than the regex on
    a 100k-file listing; the others (``?``, ``[]``, several ``*``) in any case."""

    def __init__(self, patterns: tuple[str, ...]):
        self.simple = [(h, t.lower(), len(h) + len(t)) for p in patterns if p.count("*") == 1 and not set(p) & set("?[")
                       for h, t in [p.split("*")]]
        rest = [p for p in patterns if not (p.count("*") == 1 and not set(p) & set("?["))]
        self.regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in rest), re.IGNORECASE) if rest else None

    def match(self, name: str) -> bool:
        for head, tail, n in self.simple:
            if name.startswith(head) and (name.endswith(tail) or name.lower().endswith(tail)) and len(name) >= n:
                return True
        return self.regex is not None and self.regex.match(name) is not None

    def match_all(self, names: list[str]) -> list[bool]:
        """``match`` of each name; patterns that differ only in a prefix of one length (``SDRW*.json``, ``MDRW*.json``)
        inline, without a call per name (100k names: 0.06 -> 0.02 s); a name's case is folded only where its end
        did not match as it is."""
        if self.regex is None and len({(len(h), t) for h, t, _ in self.simple}) == 1:  # SDRW*.json, MDRW*.json, ...
            heads, (_, tail, n) = tuple(h for h, _, _ in self.simple), self.simple[0]
            if not heads[0]:
                return [x.endswith(tail) or x.lower().endswith(tail) for x in names]
            return [x.startswith(heads) and (x.endswith(tail) or x.lower().endswith(tail)) and len(x) >= n for x in names]
        return [self.match(x) for x in names]


@functools.lru_cache(maxsize=64)
def _pattern(patterns: tuple[str, ...]) -> _Patterns:
    return _Patterns(tuple(os.path.normcase(p) for p in patterns))


def _matches(relname: str, patterns: list[str]) -> bool:
    pat = _pattern(tuple(patterns))
    base = relname.rsplit("/", 1)[-1]
    return bool(pat.match(os.path.normcase(base)) or pat.match(os.path.normcase(relname)))


def _zip_members(archive: Path, label: str, patterns: list[str]) -> list[InputFile]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        raise SourceError(f"{archive}: not a readable zip archive ({e}); download it again or unpack it") from e
    out = []
    shared = _Archive(archive)
    mtime = archive.stat().st_mtime_ns
    for info in infos:
        name = _zip_member_name(info)
        parts = PurePosixPath(name).parts
        if unsafe_member(name):  # listed, so that reading it is refused and counted by name (nothing is extracted)
            if _matches(name.replace("\\", "/"), patterns):
                out.append(InputFile(f"{label}!{name}", archive, info.filename, name.replace("\\", "/").rsplit("/", 1)[-1],
                                     shared, info.file_size, mtime))
            continue
        if (_matches(name, patterns) and not parts[-1].startswith(".")
                and not any(_skipped_folder(p) for p in parts[:-1])):
            out.append(InputFile(f"{label}!{name}", archive, info.filename, PurePosixPath(name).name, shared,
                                 info.file_size, mtime))
    return out


def unsafe_member(name: str) -> bool:
    """A zip member whose name leads outside the archive's folder when unpacked (``../../x.jsonl``,
    ``..\\..\\x.jsonl``, ``/etc/x``, ``C:\\x``): a zip made to overwrite files (zip slip), never one a release ships."""
    flat = name.replace("\\", "/")
    return flat.startswith("/") or bool(re.match(r"[A-Za-z]:", flat)) or ".." in flat.split("/")


def _skipped_folder(name: str) -> bool:
    """Folders a listing does not enter: hidden ones (``.ipynb_checkpoints`` holds a copy of every file opened in
    Jupyter, ``.git``) and the resource forks macOS puts in zips and folders (``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def _walk(root: str, out: list[os.DirEntry], seen: set | None = None) -> bool:
    """Every file under ``root`` not hidden, appended to ``out`` (os.scandir: one system call per folder, not per
    file). A link to a folder is followed (releases linked into one folder); each folder is entered once, its
    subfolders in name order, so a link back up is no loop and a link beside its target lists the files under
    one name on every run. Whether there were subfolders."""
    if seen is None:
        st = os.stat(root)
        seen = {(st.st_dev, st.st_ino)}
    folders = []
    with os.scandir(root) as it:
        for entry in it:
            if entry.is_dir():  # a folder, or a link to one
                if not _skipped_folder(entry.name):
                    folders.append(entry)
            elif entry.is_file() and not entry.name.startswith("."):
                out.append(entry)
    for entry in sorted(folders, key=attrgetter("name")):
        st = entry.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            _walk(entry.path, out, seen)
    return bool(folders)


def _stats(folder: str, names: list[str]) -> list[os.stat_result]:
    """The files of one folder, statted by name relative to the open folder where the system allows it: the kernel
    then resolves no whole path per file (100k files: 0.37 -> 0.33 s)."""
    if os.stat not in os.supports_dir_fd:  # Windows
        return [os.stat(os.path.join(folder, n)) for n in names]
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        return [os.stat(n, dir_fd=fd) for n in names]
    finally:
        os.close(fd)


def resolve_inputs(path: str | Path, patterns: list[str], base_dir: Path | None = None) -> Sequence[InputFile]:
    """All input files under ``path`` whose name matches one of ``patterns``, in a stable order.

    Zips found on the way are opened in place and their members matched the same way, so a folder may hold
    the unpacked release, the zip, or both of several releases.
    """
    raw = Path(path).expanduser()
    if not raw.is_absolute() and base_dir is not None:
        raw = base_dir / raw
    raw = Path(os.path.abspath(raw))  # once for the source: every file's path is then absolute
    if any(ch in str(path) for ch in "*?["):
        hits = sorted(Path(p) for p in globlib.glob(str(raw), recursive=True))
        if not hits:
            raise SourceError(f"{path}: the pattern matches no file (looked for {raw}); check the path (--source NAME=PATH)")
        files = []
        for hit in hits:
            files += resolve_inputs(hit, ["*"] if hit.is_file() and not zipfile.is_zipfile(hit) else patterns)
        return files
    if not raw.exists():  # Hangul typed composed for a folder a Mac named decomposed (or the other way round)
        raw = next((Path(p) for form in ("NFD", "NFC") if (p := unicodedata.normalize(form, str(raw))) != str(raw)
                    and os.path.exists(p)), raw)
    if not raw.exists():
        where = f" (looked at {raw.resolve()})" if str(raw.resolve()) != str(path) else ""
        raise SourceError(f"{path}: no such file or folder{where}; point the source at your download (--source NAME=PATH)")
    if raw.is_file():
        if raw.suffix.lower() == ".zip":
            return _zip_members(raw, _texts([raw.name])[0], patterns)
        st = raw.stat()
        name = _texts([raw.name])[0]
        return [InputFile(name, raw, None, name, None, st.st_size, st.st_mtime_ns)]
    if not raw.is_dir():
        raise SourceError(f"{path}: neither a file nor a folder (a device or a socket?); point the source at your "
                          "download (--source NAME=PATH)")
    # a 100k-file release: one stat per file is the floor, so everything else here is kept to a minimum
    entries: list[os.DirEntry] = []
    pat = _pattern(tuple(patterns))
    # the order of sorted(Path.rglob): by path parts, i.e. "/" sorting before every other character
    try:
        nested = _walk(str(raw), entries)
    except OSError as e:  # a folder inside that cannot be read
        raise SourceError(f"{e.filename or path}: cannot be listed ({e.strerror}); check its permissions") from None
    if nested:
        cut = len(os.path.join(str(raw), ""))
        listing = sorted(((e.path[cut:].replace(os.sep, "/"), e) for e in entries),
                         key=lambda re_: re_[0].replace("/", "\x00"))
        rels = [rel for rel, _ in listing]
        entries = [e for _, e in listing]
    else:  # one folder of files (the usual release): names are the relative paths
        entries.sort(key=attrgetter("name"))
        rels = None
    names = _texts([e.name for e in entries])
    if rels is not None:
        rels = _texts(rels)
    ok = pat.match_all(names)
    if rels is not None:
        ok = [m or ("/" in rel and pat.match(rel)) for m, rel in zip(ok, rels)]
    if all(ok):
        # statted by the names on disk (a Mac's decomposed Hangul stays so there), listed by the composed ones
        stats = _stats(str(raw), [e.name for e in entries]) if rels is None else [e.stat() for e in entries]
        return Listing(rels or names, [e.path for e in entries], names, [st.st_size for st in stats],
                       [st.st_mtime_ns for st in stats])
    files: list[InputFile] = []
    for rel, name, entry, hit in zip(rels or names, names, entries, ok):
        if hit:
            st = entry.stat()
            files.append(InputFile(rel, entry.path, None, name, None, st.st_size, st.st_mtime_ns))
        elif name.lower().endswith(".zip"):
            files += _zip_members(Path(entry.path), rel, patterns)
    return files
