"""The child process of ``documents.processing.isolation``: it parses one document.

Run as ``python -m documents.processing.extraction_child LIMITS`` (a JSON object: the
limits and the parent's pid). It limits its own memory and processor time, then imports
its parsers, and only then waits on its stdin for its one document (a JSON line: kind
and path). So a child can be started before it is needed (a spare, see
``documents.processing.spare``) and still have its limits in place before anything that
parses runs. It writes one JSON object per line to its stdout: ``{"accepted": true}``
as soon as it has read the document, the page count (``{"pages": n}``, PDFs only), each
normalized page piece (``{"page", "text", "first"}``), and a last message,
``{"done": true}`` or ``{"error": reason}``, with its peak memory. It parses one document
and exits; a parent that goes away without sending one (stdin at its end) ends it too.
"""

import ctypes
import json
import math
import os
import resource
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from documents.processing import DocumentError, DocumentKind

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_REASON_MAX_CHARS = 120
# Processor time a child may spend starting up (imports), on top of the document's own:
# the limit is moved to "document's seconds from now" when the document arrives, and a
# process may lower its hard limit but never raise it.
# How long a child may take to start (an interpreter, the parsers' imports), in processor
# time and, for its parent, in wall-clock time: a loaded machine, not the document, makes
# it slow. The document's own limits count from its arrival.
START_SECONDS = 30
# What `ps -o comm` and /proc/<pid>/comm show: a spare waiting for a document, or a
# child at work on one.
WAITING_NAME = "doc-spare"
WORKING_NAME = "doc-extracting"


def could_not_read(reason: str) -> str:
    return f"The document could not be read: {reason}."


def _child_main(limits: dict) -> int:
    _limit_this_process(limits)
    _name_this_process(WAITING_NAME)
    # The pipe to the parent gets a descriptor of its own, and stdout goes nowhere: a
    # library that prints must not garble the messages.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # Made before parsing starts: after a MemoryError there may be no memory to spare.
    out_of_memory = {
        "error": f"Reading the document needed more than the {limits['memory_bytes'] // 2**20}"
        " MB of memory allowed; it may be damaged or built to exhaust servers."
    }
    ending = None
    try:
        _import_parsers()
    except MemoryError:  # told to the parent once it sends a document, as its failure
        ending = out_of_memory
    except BaseException as exc:
        ending = _unexpected(exc)
    line = sys.stdin.buffer.readline()
    if not line:
        return 0  # our parent needs us no more
    request = {**json.loads(line), **limits}
    _name_this_process(WORKING_NAME)
    _start_the_document_clock(limits["seconds"])
    _send(out, {"accepted": True})
    if ending is None:
        try:
            for message in _messages(request):
                _send(out, message)
            ending = {"done": True}
        except DocumentError as exc:
            ending = {"error": str(exc)}
        except MemoryError:
            ending = out_of_memory  # the frames holding the memory go when this block ends
        except BaseException as exc:  # anything else is reported, never lost
            ending = _unexpected(exc)
    _send(out, {**ending, "peak_memory_bytes": _peak_memory_bytes()})
    return 0


def _send(out, message: dict) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _unexpected(exc: BaseException) -> dict:
    return {
        "error": could_not_read(f"{type(exc).__name__}: {_short(exc)}"),
        "traceback": traceback.format_exc(),
    }


def _import_parsers() -> None:
    # Imported after the limits are in place (importing is already parsing work), and
    # before the document comes, so that a spare has done it while it waited.
    import pypdf.filters  # noqa: F401 - pypdf imports it on a first page

    from documents.processing import docx, html, normalize, pdf, text  # noqa: F401


def _peak_memory_bytes() -> int | None:
    # /proc, not getrusage: ru_maxrss also counts the parent's memory, which the child
    # shared until it started the interpreter.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _messages(request: dict) -> Iterator[dict]:
    from documents.processing import docx, html, pdf, text  # imported already
    from documents.processing.normalize import normalized_pieces

    kind, path = DocumentKind(request["kind"]), Path(request["path"])
    page_counts: list[int] = []
    if kind == DocumentKind.PDF:
        pages = pdf.extract_pages(path, on_page_count=page_counts.append)
    elif kind == DocumentKind.DOCX:
        pages = docx.extract_pages(
            path, max_uncompressed_bytes=request["max_docx_uncompressed_bytes"]
        )
    elif kind == DocumentKind.HTML:
        pages = html.extract_pages(path)
    else:
        pages = text.extract_pages(path)
    for piece in normalized_pieces(pages):
        if page_counts:
            yield {"pages": page_counts.pop()}
        yield {"page": piece.number, "text": piece.text, "first": piece.first}


def _limit_this_process(limits: dict) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    # The soft limit sends SIGXCPU, which ends the process; the hard one is a backstop.
    # Both are moved to count from the document on when it arrives.
    cpu_seconds = math.ceil(limits["seconds"]) + START_SECONDS
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != limits["parent_pid"]:  # the parent died before the line above
        sys.exit(1)


def _start_the_document_clock(seconds: float) -> None:
    """Allow ``seconds`` of processor time from now: the start-up's time is not the document's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    hard = min(soft + 5, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))


def _name_this_process(name: str) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode(), 0, 0, 0)


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else "no details"
    if len(reason) > _REASON_MAX_CHARS:
        reason = reason[: _REASON_MAX_CHARS - 1].rstrip() + "…"
    return reason.rstrip(".")


if __name__ == "__main__":
    status = _child_main(json.loads(sys.argv[1]))
    # Its last word is sent and flushed. The interpreter's orderly teardown (freeing every
    # object the parser made) took tens of milliseconds, which the parent waits for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
