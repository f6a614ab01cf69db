"""The documents pages: upload (several files, dragged or chosen), a person's documents,
one document (its text and chunks, reprocess, delete), and search.

Reads go through documents' selectors and search (another user's ids are a 404, as in the
API); writes through its services. A document follows its processing task, so a page with
unfinished documents refreshes on the owner's task events, as the tasks pages do.

Uploads: the page's script sends each file in a request of its own, showing its upload
progress, and is answered in JSON; without JavaScript the form posts every chosen file at
once (together within the upload limit) and the answer is the list again.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from api.errors import DomainError
from api.pagination import NewestFirstPagination
from api.throttling import SubmitRateThrottle
from dashboard.views.pages import live_updates, local_link
from documents import search, selectors, services
from documents.apis import DocumentCollectionApi
from documents.models import Document, DocumentStatus
from documents.processing.detect import SUPPORTED_EXTENSIONS
from documents.uploads import MaxSizeUploadHandler, UploadTooLarge
from tasks_app import events

UNFINISHED = (DocumentStatus.QUEUED, DocumentStatus.PROCESSING)
# Of a completed document's text, the page shows this many characters; the whole text is
# one link away (the API's text endpoint).
PREVIEW_CHARACTERS = 5000
CHUNKS_SHOWN = 20
SEARCH_HITS_SHOWN = 20
FILES_PER_POST = 20


class DocumentPages(NewestFirstPagination):
    page_size = 25


def _document_or_404(request, document_id) -> Document:
    document = selectors.document_get_for_user(user=request.user, document_id=document_id)
    if document is None:
        raise Http404("No document with this id.")
    return document


# Exempt here and protected below, as Django's documentation says for views that set
# upload handlers: the CSRF check reads the form, which parses the upload, before the view.
@csrf_exempt
@login_required
@require_http_methods(["GET", "POST"])
def document_list(request):
    if request.method == "POST":
        request.upload_handlers.insert(
            0, MaxSizeUploadHandler(settings.DOCUMENTS_MAX_UPLOAD_BYTES, request)
        )
        try:
            return _upload(request)
        except UploadTooLarge as error:  # found as the CSRF check read the form
            return _upload_answer(request, problems=[str(error.detail)], status=413)
    since = events.cursor_of(timezone.now())
    paginator = DocumentPages()
    try:
        page = paginator.paginate_queryset(
            selectors.document_list_for_user(user=request.user), Request(request)
        )
    except NotFound:
        raise Http404("This page of the list does not exist (the cursor is not valid).") from None
    context = {
        "nav": "documents",
        "documents": page,
        "next_link": local_link(paginator.get_next_link()),
        "previous_link": local_link(paginator.get_previous_link()),
        "accept": ",".join(sorted(SUPPORTED_EXTENSIONS)),
        "max_upload_megabytes": settings.DOCUMENTS_MAX_UPLOAD_BYTES // 2**20,
        **live_updates(
            active=any(document.status in UNFINISHED for document in page),
            own=True,
            since=since,
        ),
    }
    template = "dashboard/_document_rows.html" if request.htmx else "dashboard/document_list.html"
    return render(request, template, context)


@csrf_protect
def _upload(request):
    """Each posted file becomes a document. JSON for the page's script, else the list."""
    try:
        files = request.FILES.getlist("files")
    except UploadTooLarge as error:
        return _upload_answer(request, problems=[str(error.detail)], status=413)
    if not files:
        return _upload_answer(request, problems=["Choose a file to upload."], status=400)
    if len(files) > FILES_PER_POST:
        problem = f"Upload at most {FILES_PER_POST} files at once."
        return _upload_answer(request, problems=[problem], status=400)
    # The API's limit on submits, counted in the same window: each upload queues a task.
    throttle = SubmitRateThrottle()
    api_request = Request(request)
    api_request.user = request.user
    if not throttle.allow_request(api_request, DocumentCollectionApi):
        problem = f"You are uploading too fast; try again in {throttle.wait() or 1:.0f} s."
        return _upload_answer(request, problems=[problem], status=429)
    uploaded, problems, status = [], [], 201
    for uploaded_file in files:
        try:
            uploaded.append(
                services.document_upload(owner=request.user, uploaded_file=uploaded_file)
            )
        except DomainError as error:
            problems.append(f"{uploaded_file.name}: {error}")
            status = error.http_status
    return _upload_answer(
        request,
        uploaded=uploaded,
        problems=problems,
        status=status if problems else 201,
    )


def _upload_answer(request, *, uploaded=(), problems=(), status: int):
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(
            {
                "documents": [
                    {"id": str(document.pk), "filename": document.filename} for document in uploaded
                ],
                "problems": list(problems),
            },
            status=status,
        )
    for document in uploaded:
        messages.success(request, f"“{document.filename}” is uploaded and queued.")
    for problem in problems:
        messages.error(request, problem)
    return redirect("dashboard:document-list")


@login_required
@require_GET
def document_detail(request, document_id):
    since = events.cursor_of(timezone.now())
    document = _document_or_404(request, document_id)
    context = {
        "nav": "documents",
        "document": document,
        "preview": _text_preview(document),
        "chunks": list(selectors.document_chunks(document=document)[:CHUNKS_SHOWN]),
        **live_updates(active=document.status in UNFINISHED, own=True, since=since),
    }
    template = "dashboard/_document_live.html" if request.htmx else "dashboard/document_detail.html"
    return render(request, template, context)


def _text_preview(document: Document) -> dict | None:
    if document.status != DocumentStatus.COMPLETED or not document.text_file:
        return None
    with default_storage.open(document.text_file.name, "rb") as text_file:
        # Up to 4 bytes a character in UTF-8; a character cut at the end is dropped.
        head = text_file.read(PREVIEW_CHARACTERS * 4).decode("utf-8", errors="ignore")
    return {"text": head[:PREVIEW_CHARACTERS], "cut": len(head) > PREVIEW_CHARACTERS}


@login_required
@require_POST
def document_reprocess(request, document_id):
    document = _document_or_404(request, document_id)
    try:
        services.document_reprocess(document=document)
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{document.filename}” is queued to be processed again.")
    return redirect("dashboard:document-detail", document_id=document.pk)


@login_required
@require_POST
def document_delete(request, document_id):
    document = _document_or_404(request, document_id)
    services.document_delete(document=document)
    messages.success(request, f"“{document.filename}” is deleted, with its text and chunks.")
    return redirect("dashboard:document-list")


@login_required
@require_GET
def document_search(request):
    query = request.GET.get("q", "").strip()
    hits, problem, status = [], None, 200
    if len(query) > 500:
        problem, status = "Search for at most 500 characters.", 400
    elif query:
        chunks = search.search_chunks(user=request.user, query=query)
        hits = [
            {"chunk": chunk, "snippet": search.snippet(chunk, query)}
            for chunk in chunks.select_related("document")[:SEARCH_HITS_SHOWN]
        ]
    context = {"nav": "documents", "query": query, "hits": hits, "problem": problem}
    return render(request, "dashboard/document_search.html", context, status=status)
