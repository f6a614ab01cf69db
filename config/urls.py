from csp.decorators import csp_exempt
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

# Django's own sign-in pages, for the dashboard (templates/registration/). Password reset
# by mail is left out: it needs a mail server, and staff can set a password in the admin.
account_urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
]

urlpatterns = [
    path("", include("dashboard.urls")),
    path("accounts/", include(account_urlpatterns)),
    path("admin/", admin.site.urls),
    path("", include("operations.urls")),
    path("api/v1/", include("tasks_app.urls")),
    path("api/v1/", include("documents.urls")),
    path("api/v1/", include("webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's and ReDoc's pages carry inline scripts of their own: exempt from the
    # Content-Security-Policy every other page gets (config/settings/base.py).
    path(
        "api/docs/",
        csp_exempt()(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        csp_exempt()(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
]

# Under /api/ Django's own 400, 403, 404 and 500 answer in the API's JSON format.
handler400 = "api.exception_handlers.api_bad_request"
handler403 = "api.exception_handlers.api_permission_denied"
handler404 = "api.exception_handlers.api_page_not_found"
handler500 = "api.exception_handlers.api_server_error"
