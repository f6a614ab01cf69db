"""Request plumbing shared by every app."""

from django.urls import is_valid_path

from api.exception_handlers import API_PATH_PREFIX


class ApiTrailingSlashMiddleware:
    """``/api/…`` paths answer without their trailing slash too, by serving the slashed path.

    Django's APPEND_SLASH answers a missing slash with a redirect: clients follow a 301 from
    a POST as a GET (losing the submission), and under DEBUG a POST is a 500 instead. API
    clients get the same answer with or without the slash; links keep the canonical form.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if (
            path.startswith(API_PATH_PREFIX)
            and not path.endswith("/")
            and not is_valid_path(path)
            and is_valid_path(f"{path}/")
        ):
            request.path_info = f"{path}/"
            request.path = f"{request.path}/"
        return self.get_response(request)
