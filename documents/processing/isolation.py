"""Extraction in a child process, under hard limits on its memory and time.

Parsers meet hostile files: a bomb that unpacks to gigabytes, markup that makes a parser
loop. Whatever a file does to its parser, it does it to a child process here, never to the
worker: the child limits its own address space (``RLIMIT_AS``) and processor time
(``RLIMIT_CPU``) before it imports a parser, and the parent stops it at a wall-clock
deadline. A child that runs out of memory says so and exits; one that dies says nothing,
and the parent names the likely cause. Either way the document fails with a reason, and
the worker goes on.

The child is a fresh interpreter (``python -m documents.processing.extraction_child``), started
with ``subprocess``: Celery's prefork pool processes are daemonic, and daemonic processes
may not start multiprocessing children. Its start-up (the interpreter and the parsers'
imports, some 0.3 s) took longer than reading a 50-page PDF, so a child may be started
ahead of need: it waits, limited and with its parsers imported, until it is sent its one
document on its stdin (``documents.processing.spare`` keeps one such spare per process).
The wall-clock deadline and the processor time limit count from the document's arrival.
A child reads exactly one document and exits: no child ever sees two documents.

It streams normalized page pieces to the parent as JSON lines on its stdout, so the
parent holds one piece at a time; the pipe's buffer makes the child wait while the
parent stores what it has.

The child cannot outlive the work it does: the parent kills and reaps it on every way
out of the ``with`` block (the end, an error, a cancel or time limit raised in the parent),
and the kernel kills it if the parent process dies (``PR_SET_PDEATHSIG``).
"""

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from documents.processing import DocumentError, DocumentKind, PagePiece
from documents.processing.extraction_child import START_SECONDS, could_not_read

logger = logging.getLogger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_CHILD_MODULE = "documents.processing.extraction_child"
_IDLE_CHECK_SECONDS = 1.0
_EXIT_WAIT_SECONDS = 2.0
_GARBLED = could_not_read("the reader's answer was garbled")
_READ_BYTES = 1024 * 1024
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a piece is far smaller; more means a broken child


@dataclass(frozen=True)
class ExtractionLimits:
    memory_bytes: int  # the child's address space
    seconds: float  # wall-clock time, and the child's processor time
    max_docx_uncompressed_bytes: int


class Spare(Protocol):
    """Where a pre-started child comes from: ``documents.processing.spare.SpareChild``.

    A protocol, not an import, because that module builds on this one.
    """

    def take(self, limits: ExtractionLimits) -> tuple[subprocess.Popen, bool]: ...

    def replenish(self, limits: ExtractionLimits) -> None: ...


class ChildExtraction:
    """The normalized pieces of a document's pages, extracted by a child process.

        with ChildExtraction(kind, path, limits=limits) as pieces:
            for piece in pieces:
                ...

    Iterating raises ``DocumentError`` for a file that cannot be read, including one
    that needs more memory or time than ``limits`` allow. ``on_page_count`` hears the
    page count when the format knows it (PDF); ``on_idle`` is called about once a second
    while the child works, also when it sends nothing for long, and may raise to stop
    it (a cancel). After the
    block, ``peak_memory_bytes`` is the child's peak resident memory, as it reported it
    at its end (``None`` if it died without a word).

    With ``spare``, the document goes to the child that ``spare`` started ahead of need,
    if it has the same limits, and ``spare`` starts the next one when the block ends. A
    spare found dead before it accepted the document is replaced by a new child,
    unnoticed by the caller.
    """

    def __init__(
        self,
        kind: DocumentKind,
        path: Path,
        *,
        limits: ExtractionLimits,
        on_page_count: Callable[[int], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        spare: Spare | None = None,
    ):
        self.kind = DocumentKind(kind)
        self.path = Path(path).resolve()
        self.limits = limits
        self.on_page_count = on_page_count
        self.on_idle = on_idle
        self.spare = spare
        self.peak_memory_bytes: int | None = None
        self._process: subprocess.Popen | None = None
        self._started = self._deadline = 0.0
        self._ended = False  # the child sent its last message
        self._accepted = False  # the child read the document
        self._pre_started = False  # the child was a spare, started before this document

    def __enter__(self) -> Iterator[PagePiece]:
        self._started = time.monotonic()
        self._deadline = self._started + START_SECONDS
        if self.spare is not None:
            self._process, self._pre_started = self.spare.take(self.limits)
        else:
            self._process = start_child(self.limits)
        try:
            self._send_document()
        except BaseException:
            self.__exit__()  # a with block's __exit__ is not called when __enter__ raises
            raise
        return self._pieces()

    def __exit__(self, *exc_info) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        self._end(process)
        if self.spare is not None:
            self.spare.replenish(self.limits)
        logger.info(
            "document extraction child ended kind=%s status=%s peak_memory_mb=%s seconds=%.1f"
            " pre_started=%s",
            self.kind,
            process.returncode,
            round(self.peak_memory_bytes / 2**20) if self.peak_memory_bytes else "unknown",
            time.monotonic() - self._started,
            self._pre_started,
        )

    def _end(self, process: subprocess.Popen) -> None:
        if self._ended and process.returncode is None:
            try:  # it said its last word and is exiting
                process.wait(timeout=_EXIT_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        if process.returncode is None:
            process.kill()  # no-op for a child that already exited and waits to be reaped
        self._reap(process)
        process.stdin.close()
        process.stdout.close()

    def _send_document(self) -> None:
        request = {"kind": str(self.kind), "path": str(self.path)}
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # it died; its stdout is at its end, and _pieces says why

    def _pieces(self) -> Iterator[PagePiece]:
        try:
            yield from self._child_pieces()
        except _DiedWaiting:
            # A spare killed while it waited (by an operator, the OOM killer): not this
            # document's doing, so it goes to a new child, just like the first.
            self._end(self._process)
            logger.warning(
                "document extraction spare had died waiting status=%s; starting a new child",
                self._process.returncode,
            )
            self._process, self._pre_started = start_child(self.limits), False
            self._deadline = time.monotonic() + START_SECONDS
            self._send_document()
            yield from self._child_pieces()

    def _child_pieces(self) -> Iterator[PagePiece]:
        process = self._process
        stream = process.stdout.fileno()
        buffer = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            next_idle_call = time.monotonic() + _IDLE_CHECK_SECONDS
            while True:
                while (end := buffer.find(b"\n")) >= 0:
                    try:
                        message = json.loads(buffer[:end])
                    except ValueError:
                        raise DocumentError(_GARBLED) from None
                    del buffer[: end + 1]
                    if message.get("accepted"):
                        # The document's time starts now, as the child's processor time
                        # does: a cold child's start-up on a loaded machine is not the
                        # document's doing.
                        self._accepted = True
                        self._deadline = time.monotonic() + self.limits.seconds
                    if "peak_memory_bytes" in message:  # the last message
                        self.peak_memory_bytes = message["peak_memory_bytes"]
                        self._ended = True
                    if "text" in message:
                        yield PagePiece(message["page"], message["text"], message["first"])
                    elif "pages" in message:
                        if self.on_page_count is not None:
                            self.on_page_count(message["pages"])
                    elif "error" in message:
                        if message.get("traceback"):
                            logger.warning(
                                "document extraction failed unexpectedly kind=%s\n%s",
                                self.kind,
                                message["traceback"],
                            )
                        raise DocumentError(message["error"])
                    elif message.get("done"):
                        return
                now = time.monotonic()
                if now >= self._deadline:
                    raise DocumentError(self._reason_for_deadline())
                if now >= next_idle_call:
                    next_idle_call = now + _IDLE_CHECK_SECONDS
                    if self.on_idle is not None:
                        self.on_idle()
                if selector.select(min(self._deadline, next_idle_call) - now):
                    data = os.read(stream, _READ_BYTES)
                    if not data:
                        if self._pre_started and not self._accepted:
                            raise _DiedWaiting
                        break
                    buffer += data
                    if len(buffer) > _MAX_MESSAGE_BYTES and b"\n" not in data:
                        raise DocumentError(_GARBLED)
        raise DocumentError(self._reason_for_silent_end(process))

    def _reason_for_deadline(self) -> str:
        if not self._accepted:
            return (
                f"The document reader did not start within {START_SECONDS} s; the server is "
                "overloaded. Try again later."
            )
        return (
            f"Reading the document took longer than the {self.limits.seconds:g} s allowed; "
            "it may be damaged or built to exhaust servers."
        )

    def _reason_for_silent_end(self, process: subprocess.Popen) -> str:
        """Why a child ended without a word: the kernel's limits, or a crash."""
        self._reap(process)
        code = process.returncode
        if code == -signal.SIGXCPU:
            return (
                f"Reading the document took longer than the {self.limits.seconds:g} s of "
                "processor time allowed; it may be damaged or built to exhaust servers."
            )
        if code == -signal.SIGKILL:  # the processor time's hard limit, or the OOM killer
            return could_not_read(
                "its reader was stopped by the system, for lack of memory or time: it may "
                "be damaged or built to exhaust servers"
            )
        if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            # A C library that cannot allocate memory often aborts instead of reporting it.
            return could_not_read(
                "its reader crashed, most likely for lack of memory: it may be damaged "
                "or built to exhaust servers"
            )
        return could_not_read(f"its reader stopped with exit status {code}")

    def _reap(self, process: subprocess.Popen) -> None:
        if process.returncode is None:
            process.wait()


class _DiedWaiting(Exception):
    """A pre-started child ended before it accepted its document."""


def start_child(limits: ExtractionLimits) -> subprocess.Popen:
    """A new extraction child: it sets ``limits``, imports its parsers and waits for a document.

    Its stdin takes one JSON line, ``{"kind", "path"}``; ``ChildExtraction`` sends it.
    """
    child_limits = {
        "memory_bytes": limits.memory_bytes,
        "seconds": limits.seconds,
        "max_docx_uncompressed_bytes": limits.max_docx_uncompressed_bytes,
        "parent_pid": os.getpid(),
    }
    return subprocess.Popen(
        [sys.executable, "-m", _CHILD_MODULE, json.dumps(child_limits)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=_PROJECT_ROOT,
    )
