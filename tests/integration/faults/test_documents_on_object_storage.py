"""A worker that shares no disk with the web side processes a document: the upload and the
extracted text live in S3-compatible object storage (moto's server on loopback), and the
worker's own var folder keeps nothing of it."""

import pytest

from documents.models import Document
from tests.documents import samples
from tests.storage.conftest import s3_bucket, s3_server
from tests.waiting import wait_until

__all__ = ["s3_bucket", "s3_server"]  # fixtures, used by name

pytestmark = pytest.mark.integration


def test_a_worker_on_another_disk_reads_the_upload_and_writes_the_text_to_the_bucket(
    api, fleet, s3_server, s3_bucket, tmp_path, settings
):
    worker_disk = tmp_path / "worker-host"
    fleet.env.update({**s3_server.environment(s3_bucket), "DJANGO_VAR_DIR": str(worker_disk)})
    fleet.start_worker("other-host")
    pdf = samples.make_pdf(tmp_path / "report.pdf", ["Quarterly report.", "Page two."])

    with pdf.open("rb") as upload:
        response = api.post("/api/v1/documents/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    url = f"/api/v1/documents/{response.json()['id']}/"

    def finished():
        body = api.get(url).json()
        return body if body["status"] in ("completed", "failed") else None

    body = wait_until(finished, timeout=90, what="the document to be processed")
    assert body["status"] == "completed", body
    text = api.get(url + "text/")
    assert b"".join(text.streaming_content).decode() == "Quarterly report.\n\nPage two."
    document = Document.objects.get(pk=body["id"])
    assert s3_server.keys(s3_bucket) == sorted([document.source_file.name, document.text_file.name])
    # Neither side kept a copy on its own disk: the worker's scratch copy is gone.
    worker_files = [path for path in worker_disk.rglob("*") if path.is_file()]
    assert not [path for path in worker_files if "documents" in path.parts], worker_files
    assert not (settings.MEDIA_ROOT / "documents" / body["id"]).exists()
