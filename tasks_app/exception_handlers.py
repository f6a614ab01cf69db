"""Domain errors become HTTP here, once, in DRF's error format."""

from rest_framework import exceptions
from rest_framework.views import exception_handler

from tasks_app.errors import TaskNotCancellable


class TaskConflict(exceptions.APIException):
    status_code = 409
    default_code = "conflict"


def domain_exception_handler(exc, context):
    if isinstance(exc, TaskNotCancellable):
        response = exception_handler(TaskConflict(str(exc)), context)
        response.data["status"] = exc.status
        return response
    return exception_handler(exc, context)
