from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="api-docs", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("operations.urls")),
    path("api/v1/", include("tasks_app.urls")),
    path("api/v1/", include("documents.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

# Under /api/ Django's own 400, 403, 404 and 500 answer in the API's JSON format.
handler400 = "api.exception_handlers.api_bad_request"
handler403 = "api.exception_handlers.api_permission_denied"
handler404 = "api.exception_handlers.api_page_not_found"
handler500 = "api.exception_handlers.api_server_error"
