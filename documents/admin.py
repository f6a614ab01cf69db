from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from documents.models import Document, DocumentChunk
from documents.services import document_delete


class DocumentChunkInline(admin.TabularInline):
    model = DocumentChunk
    fields = ["index", "page_start", "page_end", "start", "end", "text"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).current()


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = [
        "filename",
        "kind",
        "status",
        "owner",
        "page_count",
        "chunk_count",
        "created_at",
    ]
    list_filter = ["status", "kind", "owner"]
    search_fields = ["filename", "source_url", "owner__username"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    readonly_fields = ["task_link"]
    inlines = [DocumentChunkInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Document._meta.fields] + ["task_link"]

    def has_add_permission(self, request):
        return False

    # Both of the admin's ways to delete go through the service, as the API's delete does:
    # a plain row delete would leave the processing task running and the files behind.
    def delete_model(self, request, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request, queryset) -> None:
        for document in queryset.select_related("task"):
            document_delete(document=document)

    @admin.display(description="Processing task")
    def task_link(self, document: Document) -> str:
        if document.task_id is None:
            return "-"
        url = reverse("admin:tasks_app_taskrecord_change", args=[document.task_id])
        return format_html('<a href="{}">{}</a>', url, document.task_id)


@admin.register(DocumentChunk)
class DocumentChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "generation", "index", "page_start", "page_end", "start", "end"]
    list_select_related = ["document"]
    search_fields = ["document__filename", "=document__id"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in DocumentChunk._meta.fields]

    def has_add_permission(self, request):
        return False
