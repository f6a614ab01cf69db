"""Members of an untrusted zip archive (a .docx), read without trusting its directory.

A zip's central directory declares each member's sizes, and whoever made the file wrote
it. Python's ``ZipFile.read()`` inflates a member's whole stream in one step and only then
cuts it to the declared size, so a member that declares 1 KB and holds 1 GiB costs 1 GiB of
memory. Here, instead:

- the member count, the declared unpacked total and the declared compression ratio are
  checked before anything is inflated;
- members must not overlap: one compressed stream shared by many entries is how a 46 MB
  zip unpacks to petabytes (CPython refuses such entries only from 3.11.8 on, CVE-2024-0450);
- a member is inflated in bounded steps that count the bytes it really yields: more than
  it declared, or more than the caller allows, and reading stops at once.
"""

import io
import struct
import zipfile
import zlib
from pathlib import Path

from documents.processing import DocumentError

DAMAGED = "The Word file is damaged (truncated or not a valid .docx)."
MAX_MEMBERS = 5000
# Below this size a high compression ratio is harmless (a long table of empty cells).
_RATIO_CHECK_MIN_BYTES = 10 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_READ_BYTES = 64 * 1024
_SUPPORTED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_EXHAUSTING = "it was not opened, as files like this are used to exhaust servers"


class SafeZip:
    """An archive whose directory passed the checks above; ``open()`` reads one member.

    Raises ``DocumentError`` for a damaged archive or one that fails a check.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_uncompressed_bytes: int,
        max_ratio: int = 100,
        max_members: int = MAX_MEMBERS,
    ):
        try:
            self._file = open(path, "rb")  # closed by close()
        except OSError as exc:
            raise DocumentError(DAMAGED) from exc
        try:
            with zipfile.ZipFile(self._file) as archive:
                members = archive.infolist()
                directory_start = archive.start_dir
            self._members = _checked_members(
                self._file,
                members,
                directory_start=directory_start,
                max_uncompressed_bytes=max_uncompressed_bytes,
                max_ratio=max_ratio,
                max_members=max_members,
            )
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error) as exc:
            self._file.close()
            raise DocumentError(DAMAGED) from exc
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def names(self) -> set[str]:
        return set(self._members)

    def open(self, name: str, *, max_bytes: int) -> io.BufferedReader:
        """A stream of the member's unpacked bytes; ``KeyError`` if there is no such member.

        Reading raises ``DocumentError`` as soon as the member yields more than it declared
        or more than ``max_bytes``, and at its end if its size or checksum is wrong.
        """
        info, data_start = self._members[name]
        if info.file_size > max_bytes:
            raise DocumentError(
                f"The Word file's part {name} is too large once unpacked: "
                f"{_size(info.file_size)}, more than the {_size(max_bytes)} allowed."
            )
        return io.BufferedReader(_MemberStream(self._file, info, data_start), _READ_BYTES)


def _checked_members(
    file,
    members: list[zipfile.ZipInfo],
    *,
    directory_start: int,
    max_uncompressed_bytes: int,
    max_ratio: int,
    max_members: int,
) -> dict[str, tuple[zipfile.ZipInfo, int]]:
    if len(members) > max_members:
        raise DocumentError(
            f"The Word file holds {len(members)} parts, more than the {max_members} allowed; "
            f"{_EXHAUSTING}."
        )
    uncompressed = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members)
    if uncompressed > max_uncompressed_bytes:
        raise DocumentError(
            f"The Word file is too large once unpacked: {_size(uncompressed)}, more than "
            f"the {_size(max_uncompressed_bytes)} allowed."
        )
    ratio = uncompressed / max(compressed, 1)
    if uncompressed >= _RATIO_CHECK_MIN_BYTES and ratio > max_ratio:
        raise DocumentError(
            f"The Word file is compressed {ratio:.0f} to 1, far more than real documents "
            f"are; {_EXHAUSTING}."
        )
    checked: dict[str, tuple[zipfile.ZipInfo, int]] = {}
    end_of_previous = 0
    for member in sorted(members, key=lambda member: member.header_offset):
        if member.filename in checked:
            raise DocumentError(f"{DAMAGED[:-1]}: it names the part {member.filename} twice.")
        if member.header_offset < end_of_previous:
            raise DocumentError(f"The Word file's parts overlap in the archive; {_EXHAUSTING}.")
        data_start = _data_start(file, member)
        end_of_previous = data_start + member.compress_size
        if end_of_previous > directory_start:
            raise DocumentError(DAMAGED)
        checked[member.filename] = (member, data_start)
    return checked


def _data_start(file, member: zipfile.ZipInfo) -> int:
    file.seek(member.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(file.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_HEADER_SIGNATURE:
        raise zipfile.BadZipFile("bad local file header")
    return member.header_offset + _LOCAL_HEADER.size + name_length + extra_length


class _MemberStream(io.RawIOBase):
    """One member's bytes, inflated at most one buffer at a time and counted as they come."""

    def __init__(self, file, info: zipfile.ZipInfo, data_start: int):
        super().__init__()
        if info.flag_bits & 0x1:
            raise DocumentError("The Word file is encrypted; save it without a password.")
        if info.compress_type not in _SUPPORTED_COMPRESSION:
            raise DocumentError(DAMAGED)
        self._file = file
        self._info = info
        self._position = data_start
        self._compressed_left = info.compress_size
        self._inflater = (
            zlib.decompressobj(-zlib.MAX_WBITS)
            if info.compress_type == zipfile.ZIP_DEFLATED
            else None
        )
        self._produced = 0
        self._crc = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._ended:
            data = self._next_bytes(len(buffer))
            if data is None:
                self._finish()
                break
            if data:
                self._produced += len(data)
                if self._produced > self._info.file_size:
                    raise DocumentError(
                        f"The Word file's part {self._info.filename} holds more bytes than its "
                        "zip directory declares; reading stopped there, as files like this are "
                        "used to exhaust servers."
                    )
                self._crc = zlib.crc32(data, self._crc)
                buffer[: len(data)] = data
                return len(data)
        return 0

    def _next_bytes(self, limit: int) -> bytes | None:
        """Up to ``limit`` more unpacked bytes (maybe none yet); ``None`` at the end."""
        if self._inflater is None:
            if not self._compressed_left:
                return None
            return self._read_compressed(min(limit, self._compressed_left))
        try:
            if self._inflater.eof:
                return None
            source = self._inflater.unconsumed_tail
            if not source:
                if not self._compressed_left:
                    return None  # the stream ends before its end marker: checked in _finish
                source = self._read_compressed(min(_READ_BYTES, self._compressed_left))
            return self._inflater.decompress(source, limit)
        except zlib.error as exc:
            raise DocumentError(DAMAGED) from exc

    def _read_compressed(self, size: int) -> bytes:
        self._file.seek(self._position)
        data = self._file.read(size)
        if not data:
            raise DocumentError(DAMAGED)
        self._position += len(data)
        self._compressed_left -= len(data)
        return data

    def _finish(self) -> None:
        self._ended = True
        if self._produced != self._info.file_size or self._crc != self._info.CRC:
            raise DocumentError(DAMAGED)


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{round(size / (1024 * 1024))} MB"
    return f"{-(-size // 1024)} KB"
