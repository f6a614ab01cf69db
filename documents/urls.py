from django.urls import path, re_path

from documents import apis

# Sub-resources answer with or without the trailing slash (".../text" as well as ".../text/").
_ID = r"(?P<document_id>[^/]+)"

urlpatterns = [
    path("documents/", apis.DocumentCollectionApi.as_view(), name="document-list"),
    re_path(r"^documents/search/?$", apis.DocumentSearchApi.as_view(), name="document-search"),
    path("documents/<str:document_id>/", apis.DocumentDetailApi.as_view(), name="document-detail"),
    re_path(rf"^documents/{_ID}/text/?$", apis.DocumentTextApi.as_view(), name="document-text"),
    re_path(
        rf"^documents/{_ID}/chunks/?$", apis.DocumentChunksApi.as_view(), name="document-chunks"
    ),
    re_path(
        rf"^documents/{_ID}/reprocess/?$",
        apis.DocumentReprocessApi.as_view(),
        name="document-reprocess",
    ),
]
