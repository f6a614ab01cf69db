"""HTTP API of documents: upload or ingest, list, poll, read text and chunks, search."""

import django_filters
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import (
    CheckedCursorPagination,
    NewestFirstPagination,
    StrictPageSize,
    filtered_page_response,
)
from api.parsers import BoundedJSONParser
from api.schema import ErrorSerializer
from api.throttling import SubmitRateThrottle
from documents import search, selectors, services
from documents.errors import DocumentNotReady
from documents.models import Document, DocumentChunk, DocumentStatus
from documents.processing import DocumentKind
from documents.uploads import BoundedMultiPartParser


@extend_schema_serializer(component_name="Document")
class DocumentOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    error = serializers.CharField(source="error_message")
    task = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id",
            "filename",
            "source_url",
            "kind",
            "size",
            "status",
            "progress",
            "page_count",
            "word_count",
            "chunk_count",
            "error",
            "task",
            "created_at",
            "processed_at",
            "links",
        ]

    def get_progress(self, document: Document) -> dict | None:
        return None if document.task is None else document.task.progress

    def get_task(self, document: Document) -> dict | None:
        if document.task_id is None:
            return None
        url = reverse("task-detail", args=[document.task_id])
        return {
            "id": str(document.task_id),
            "status": document.task.status,
            "poll": self.context["request"].build_absolute_uri(url),
        }

    def get_links(self, document: Document) -> dict:
        request = self.context["request"]
        return {
            name: request.build_absolute_uri(reverse(f"document-{name}", args=[document.pk]))
            for name in ("detail", "text", "chunks", "reprocess")
        }


def _document_or_404(request, document_id) -> Document:
    document = selectors.document_get_for_user(user=request.user, document_id=document_id)
    if document is None:
        raise Http404("No document with this id.")
    return document


def _render(request, document: Document, **kwargs) -> Response:
    return Response(DocumentOutputSerializer(document, context={"request": request}).data, **kwargs)


class DocumentFilter(django_filters.FilterSet):
    # distinct=False: one status and kind per row, so ``IN (…)`` repeats none; DISTINCT
    # would sort every match on all its columns before the page.
    status = django_filters.MultipleChoiceFilter(choices=DocumentStatus.choices, distinct=False)
    kind = django_filters.MultipleChoiceFilter(
        choices=[(k.value, k.value) for k in DocumentKind], distinct=False
    )

    class Meta:
        model = Document
        fields = ["status", "kind"]


class DocumentCollectionApi(APIView):
    """GET lists the caller's documents; POST uploads a file (multipart) or a URL (JSON)."""

    parser_classes = [BoundedMultiPartParser, BoundedJSONParser]
    throttle_classes = [SubmitRateThrottle]
    throttle_scope = "task_submit"
    # The list's filters and pages, named as DRF's generic views name them, so that the
    # schema documents them; the queryset only tells it the model (rows come from selectors).
    filter_backends = [DjangoFilterBackend]
    filterset_class = DocumentFilter
    pagination_class = NewestFirstPagination
    queryset = Document.objects.none()

    @extend_schema_serializer(component_name="DocumentUrl")
    class UrlInputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=2048)

    @extend_schema_serializer(component_name="DocumentUpload")
    class UploadInputSerializer(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=True)

    @extend_schema(responses={200: DocumentOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.document_list_for_user(user=request.user),
            serializer_class=DocumentOutputSerializer,
        )

    @extend_schema(
        request={
            "multipart/form-data": UploadInputSerializer,
            "application/json": UrlInputSerializer,
        },
        responses={
            202: DocumentOutputSerializer,
            415: OpenApiResponse(
                ErrorSerializer,
                description="Not a format the service reads, or a media type it does not take.",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="The file store (object storage) could not take the file right "
                "now; nothing was stored. Try again.",
            ),
        },
    )
    def post(self, request):
        if request.content_type.startswith("multipart/"):
            serializer = self.UploadInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            document = services.document_upload(
                owner=request.user, uploaded_file=serializer.validated_data["file"]
            )
        else:
            serializer = self.UrlInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            document = services.document_ingest_url(
                owner=request.user, url=serializer.validated_data["url"]
            )
        response = _render(request, document, status=status.HTTP_202_ACCEPTED)
        response["Location"] = response.data["links"]["detail"]
        return response


class DocumentDetailApi(APIView):
    """GET shows one document; DELETE cancels its processing and removes it."""

    @extend_schema(responses={200: DocumentOutputSerializer})
    def get(self, request, document_id):
        return _render(request, _document_or_404(request, document_id))

    @extend_schema(responses={204: None})
    def delete(self, request, document_id):
        services.document_delete(document=_document_or_404(request, document_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReprocessApi(APIView):
    @extend_schema(
        request=None,
        responses={
            202: DocumentOutputSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The document is still processed."),
        },
    )
    def post(self, request, document_id):
        document = services.document_reprocess(document=_document_or_404(request, document_id))
        return _render(request, document, status=status.HTTP_202_ACCEPTED)


class DocumentTextApi(APIView):
    """The extracted, normalized text, as text/plain (streamed from storage)."""

    @extend_schema(
        responses={
            (200, "text/plain"): str,
            409: OpenApiResponse(ErrorSerializer, description="The document has no text yet."),
        }
    )
    def get(self, request, document_id):
        document = _document_or_404(request, document_id)
        if document.status != DocumentStatus.COMPLETED or not document.text_file:
            raise DocumentNotReady(status=document.status)
        return FileResponse(
            default_storage.open(document.text_file.name, "rb"),
            content_type="text/plain; charset=utf-8",
        )


@extend_schema_serializer(component_name="DocumentChunk")
class ChunkOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = DocumentChunk
        fields = ["index", "text", "start", "end", "page_start", "page_end"]


class ChunkPagination(CheckedCursorPagination):
    ordering = ("index",)
    max_page_size = 500


class DocumentChunksApi(APIView):
    pagination_class = ChunkPagination

    @extend_schema(responses={200: ChunkOutputSerializer(many=True)})
    def get(self, request, document_id):
        document = _document_or_404(request, document_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            selectors.document_chunks(document=document), request, view=self
        )
        return paginator.get_paginated_response(ChunkOutputSerializer(page, many=True).data)


class SearchPagination(StrictPageSize, PageNumberPagination):
    max_page_size = 100


class DocumentSearchApi(APIView):
    """The caller's chunks that match ``q``, with their document and a highlighted snippet."""

    pagination_class = SearchPagination

    @extend_schema_serializer(component_name="SearchQuery")
    class InputSerializer(serializers.Serializer):
        q = serializers.CharField(max_length=500, help_text="Words or phrases")

    @extend_schema_serializer(component_name="SearchHit")
    class OutputSerializer(serializers.Serializer):
        document = serializers.SerializerMethodField()
        chunk_index = serializers.IntegerField(source="index")
        start = serializers.IntegerField()
        end = serializers.IntegerField()
        page_start = serializers.IntegerField()
        page_end = serializers.IntegerField()
        rank = serializers.FloatField(default=None)
        snippet = serializers.SerializerMethodField()

        def get_document(self, chunk) -> dict:
            request = self.context["request"]
            url = reverse("document-detail", args=[chunk.document_id])
            return {
                "id": str(chunk.document_id),
                "filename": chunk.document.filename,
                "url": request.build_absolute_uri(url),
            }

        def get_snippet(self, chunk) -> str:
            return search.snippet(chunk, self.context["query"])

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer(many=True)})
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query = params.validated_data["q"]
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            search.search_chunks(user=request.user, query=query), request, view=self
        )
        context = {"request": request, "query": query}
        return paginator.get_paginated_response(
            self.OutputSerializer(page, many=True, context=context).data
        )
