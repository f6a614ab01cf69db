"""A spare extraction child: started before the document, used for that one only, replaced."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from documents.processing import DocumentError, DocumentKind, PagePiece
from documents.processing.extraction_child import WAITING_NAME, WORKING_NAME
from documents.processing.isolation import ChildExtraction, ExtractionLimits
from documents.processing.spare import SpareChild
from tests.documents import samples
from tests.documents.processing.test_isolation import (
    LIMITS,
    extraction_children,
    no_child_left,  # noqa: F401 - a fixture
    token_heavy_pdf,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.integration


@pytest.fixture
def spare(no_child_left):  # noqa: F811 - the fixture imported above
    spare = SpareChild()
    yield spare
    spare.discard()


def process_name(pid: int) -> str | None:
    """What the kernel calls a living process (None once it is gone or a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else name


def wait_until_waiting(pid: int) -> None:
    deadline = time.monotonic() + 30
    while process_name(pid) != WAITING_NAME:
        assert time.monotonic() < deadline, f"{pid} is {process_name(pid)}"
        time.sleep(0.01)


def extract(path, spare, limits=LIMITS, **callbacks) -> list[PagePiece]:
    with ChildExtraction(DocumentKind.PDF, path, limits=limits, spare=spare, **callbacks) as pieces:
        return list(pieces)


def test_a_document_is_read_by_the_child_started_before_it(tmp_path, spare):
    path = samples.make_pdf(tmp_path / "a.pdf", ["First page", "Second page"])
    extract(path, spare)  # the first document has no spare yet; it leaves one
    waiting = spare.pid
    wait_until_waiting(waiting)
    names_while_read = []

    pieces = extract(
        path, spare, on_page_count=lambda count: names_while_read.append(process_name(waiting))
    )

    assert pieces == [PagePiece(1, "First page", True), PagePiece(2, "Second page", True)]
    assert names_while_read == [WORKING_NAME]  # it, and no new child, read the document
    assert process_name(waiting) is None  # it read one document and is gone, reaped
    assert not Path(f"/proc/{waiting}").exists()
    assert spare.pid != waiting and process_name(spare.pid) is not None
    assert extraction_children() == {spare.pid}


def test_a_spare_killed_while_waiting_does_not_fail_the_next_document(tmp_path, spare):
    path = samples.make_pdf(tmp_path / "a.pdf", ["Still read"])
    extract(path, spare)
    killed = spare.pid
    wait_until_waiting(killed)
    os.kill(killed, signal.SIGKILL)
    while process_name(killed) is not None:
        time.sleep(0.01)

    assert extract(path, spare) == [PagePiece(1, "Still read", True)]
    assert not Path(f"/proc/{killed}").exists()  # and reaped


def test_a_spare_that_dies_as_it_is_handed_the_document_does_not_fail_it(tmp_path, spare):
    path = samples.make_pdf(tmp_path / "a.pdf", ["Still read"])
    extract(path, spare)
    doomed = spare.pid
    wait_until_waiting(doomed)
    os.kill(doomed, signal.SIGSTOP)  # alive when taken, but it will never read its stdin

    with ChildExtraction(DocumentKind.PDF, path, limits=LIMITS, spare=spare) as pieces:
        os.kill(doomed, signal.SIGKILL)
        assert list(pieces) == [PagePiece(1, "Still read", True)]
    assert not Path(f"/proc/{doomed}").exists()


def test_a_spare_with_other_limits_is_not_used_the_documents_limits_apply(
    tmp_path,
    spare,
    token_heavy_pdf,  # noqa: F811 - the fixture imported above
):
    extract(samples.make_pdf(tmp_path / "a.pdf", ["x"]), spare)  # a spare with 512 MB
    generous = spare.pid
    tight = ExtractionLimits(memory_bytes=150 * 2**20, seconds=60, max_docx_uncompressed_bytes=1)

    with pytest.raises(DocumentError) as caught:
        extract(token_heavy_pdf, spare, limits=tight)

    assert str(caught.value) == (
        "Reading the document needed more than the 150 MB of memory allowed; it may be "
        "damaged or built to exhaust servers."
    )
    assert not Path(f"/proc/{generous}").exists()


def test_the_time_limit_counts_from_the_document_not_the_spares_start(tmp_path, spare):
    path = samples.make_pdf(tmp_path / "a.pdf", ["Read in time"])
    limits = ExtractionLimits(memory_bytes=512 * 2**20, seconds=1, max_docx_uncompressed_bytes=1)
    extract(path, spare, limits=limits)  # leaves a spare with these limits
    waiting = spare.pid
    wait_until_waiting(waiting)
    time.sleep(1.5)  # it waits longer than a document may take

    assert extract(path, spare, limits=limits) == [PagePiece(1, "Read in time", True)]
    assert not Path(f"/proc/{waiting}").exists()  # it was the one that read it


def test_a_child_slow_to_take_the_document_is_not_charged_for_it(tmp_path, spare):
    """A loaded machine, not the document, made the child late: its time counts from arrival."""
    path = samples.make_pdf(tmp_path / "a.pdf", ["Read in time"])
    limits = ExtractionLimits(memory_bytes=512 * 2**20, seconds=1, max_docx_uncompressed_bytes=1)
    spare.replenish(limits)
    waiting = spare.pid
    wait_until_waiting(waiting)
    os.kill(waiting, signal.SIGSTOP)  # as a busy machine would, for longer than the limit
    resumer = threading.Timer(1.5, os.kill, (waiting, signal.SIGCONT))
    resumer.start()
    try:
        assert extract(path, spare, limits=limits) == [PagePiece(1, "Read in time", True)]
    finally:
        resumer.join()
    assert not Path(f"/proc/{waiting}").exists()  # it was the one that read it


def test_a_file_taking_longer_than_allowed_stops_the_spare_that_reads_it(
    token_heavy_pdf,  # noqa: F811 - the fixture imported above
    spare,
):
    limits = ExtractionLimits(memory_bytes=512 * 2**20, seconds=1, max_docx_uncompressed_bytes=1)
    extract(samples.make_pdf(token_heavy_pdf.parent / "a.pdf", ["x"]), spare, limits=limits)
    reader = spare.pid

    with pytest.raises(DocumentError) as caught:
        extract(token_heavy_pdf, spare, limits=limits)

    assert str(caught.value) == (
        "Reading the document took longer than the 1 s allowed; it may be damaged or built "
        "to exhaust servers."
    )
    assert not Path(f"/proc/{reader}").exists()


def test_a_cancel_while_the_spare_reads_stops_it(token_heavy_pdf, spare):  # noqa: F811
    extract(samples.make_pdf(token_heavy_pdf.parent / "a.pdf", ["x"]), spare)
    reader = spare.pid

    class Cancelled(Exception):
        pass

    def cancel() -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        extract(token_heavy_pdf, spare, on_idle=cancel)
    assert not Path(f"/proc/{reader}").exists()


def test_discard_ends_and_reaps_the_spare(tmp_path, spare):
    extract(samples.make_pdf(tmp_path / "a.pdf", ["x"]), spare)
    waiting = spare.pid

    spare.discard()

    assert spare.pid is None
    assert not Path(f"/proc/{waiting}").exists()


def test_a_spare_dies_with_its_process_when_that_is_killed(tmp_path):
    path = samples.make_pdf(tmp_path / "a.pdf", ["x"])
    # A process that leaves a spare, as a pool process does, and waits to be killed.
    script = (
        "import sys, time\n"
        "from documents.processing import DocumentKind\n"
        "from documents.processing.isolation import ChildExtraction\n"
        "from documents.processing.spare import process_spare\n"
        "from tests.documents.processing.test_spare import LIMITS\n"
        f"with ChildExtraction(DocumentKind.PDF, {str(path)!r}, limits=LIMITS,"
        " spare=process_spare) as pieces:\n"
        "    list(pieces)\n"
        "print(process_spare.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[3], stdout=subprocess.PIPE
    )
    try:
        waiting = int(owner.stdout.readline())
        wait_until_waiting(waiting)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()

    deadline = time.monotonic() + 10
    # The kernel kills it (PR_SET_PDEATHSIG); its stdin reaching its end would end it too.
    while process_name(waiting) is not None:
        assert time.monotonic() < deadline, f"{waiting} outlived its parent"
        time.sleep(0.05)
