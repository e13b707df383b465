"""Reading a reference folder's files as text, whether plain, compressed (.xz .lzma .gz .bz2) or inside an archive
(.tar, .tar.gz/.tgz, .tar.xz, .tar.lzma, .tar.bz2)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

COMPRESSED: dict[str, Callable[..., io.BufferedIOBase]] = {
    ".xz": lzma.open,
    ".lzma": lzma.open,
    ".gz": gzip.open,
    ".bz2": bz2.open,
}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.lzma", ".tar.bz2", ".txz")


@dataclass(frozen=True)
class FileEntry:
    """One readable file: ``name`` is its path relative to the folder (``archive.tar.xz:member`` inside archives);
    ``stem`` is its own name with compression suffixes removed."""

    name: str
    stem: str
    read_bytes: Callable[[], bytes]

    def text(self) -> str:
        return self.read_bytes().decode("utf-8", errors="replace")


def strip_compression(name: str) -> str:
    for suf in COMPRESSED:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def is_archive(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def _reader(path: Path) -> Callable[[], bytes]:
    opener = COMPRESSED.get(path.suffix)
    if opener is None:
        return path.read_bytes

    def read() -> bytes:
        with opener(path, "rb") as f:
            return f.read()

    return read


def _open_archive(path: Path) -> tarfile.TarFile:
    # tarfile knows gz/bz2/xz but not the legacy .lzma container; lzma.open reads both .xz and .lzma
    if path.name.endswith((".tar.lzma", ".tar.xz", ".txz")):
        with lzma.open(path, "rb") as f:
            return tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:")
    return tarfile.open(path, mode="r:*")


def iter_archive(path: Path, prefix: str = "") -> Iterator[FileEntry]:
    try:
        tar = _open_archive(path)
    except (tarfile.TarError, lzma.LZMAError, OSError, EOFError) as exc:
        raise ValueError(f"cannot open archive {path}: {exc}") from exc
    with tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not m.isfile():
                continue
            f = tar.extractfile(m)
            data = f.read() if f is not None else b""
            member = Path(m.name).name
            inner = strip_compression(member)
            raw = data
            if inner != member:  # a compressed file inside an archive
                raw = COMPRESSED[member[len(inner) :]](io.BytesIO(data)).read()
            yield FileEntry(f"{prefix}{path.name}:{m.name}", inner, _constant(raw))


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def list_files(folder: Path, archives: bool = True) -> list[FileEntry]:
    """Every regular file directly in ``folder`` (not subfolders), archives expanded when ``archives``."""
    out: list[FileEntry] = []
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if is_archive(p.name):
            if archives:
                out.extend(iter_archive(p))
            continue
        out.append(FileEntry(p.name, strip_compression(p.name), _reader(p)))
    return out
