"""The child process of ``documents.processing.isolation``: it parses one document.

Run as ``python -m documents.processing.extraction_child REQUEST`` (a JSON object: the
file, its kind and the limits). It limits its own memory and processor time before it
imports a parser, then writes one JSON object per line to its stdout: the page count
(``{"pages": n}``, PDFs only), each normalized page piece (``{"page", "text", "first"}``),
and a last message, ``{"done": true}`` or ``{"error": reason}``, with its peak memory.
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
_REASON_MAX_CHARS = 120


def could_not_read(reason: str) -> str:
    return f"The document could not be read: {reason}."


def _child_main(request: dict) -> int:
    _limit_this_process(request)
    # The pipe to the parent gets a descriptor of its own, and stdout goes nowhere: a
    # library that prints must not garble the messages.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # Made before parsing starts: after a MemoryError there may be no memory to spare.
    out_of_memory = {
        "error": f"Reading the document needed more than the {request['memory_bytes'] // 2**20}"
        " MB of memory allowed; it may be damaged or built to exhaust servers."
    }
    try:
        for message in _messages(request):
            out.write(json.dumps(message).encode() + b"\n")
            out.flush()
        ending = {"done": True}
    except DocumentError as exc:
        ending = {"error": str(exc)}
    except MemoryError:
        ending = out_of_memory  # the frames holding the memory go when this block ends
    except BaseException as exc:  # anything else is reported, never lost
        ending = {
            "error": could_not_read(f"{type(exc).__name__}: {_short(exc)}"),
            "traceback": traceback.format_exc(),
        }
    last = json.dumps({**ending, "peak_memory_bytes": _peak_memory_bytes()})
    out.write(last.encode() + b"\n")
    out.flush()
    return 0


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
    # Imported here, after the limits are in place: importing is already parsing work.
    from documents.processing import docx, html, pdf, text
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


def _limit_this_process(request: dict) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (request["memory_bytes"],) * 2)
    cpu_seconds = math.ceil(request["seconds"])
    # The soft limit sends SIGXCPU, which ends the process; the hard one is a backstop.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != request["parent_pid"]:  # the parent died before the line above
        sys.exit(1)


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else "no details"
    if len(reason) > _REASON_MAX_CHARS:
        reason = reason[: _REASON_MAX_CHARS - 1].rstrip() + "…"
    return reason.rstrip(".")


if __name__ == "__main__":
    sys.exit(_child_main(json.loads(sys.argv[1])))
