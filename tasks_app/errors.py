"""Domain errors. Services raise these; the API's exception handler turns them into HTTP."""

from api.errors import DomainError


class TaskError(DomainError):
    """Base class of the errors a task service raises for a caller to handle."""


class TaskCancelled(Exception):
    """Raised inside a task body when its record was cancelled: the body must stop."""


class TaskNotCancellable(TaskError):
    """The task already reached a final status, so there is nothing left to cancel."""

    http_status = 409

    def __init__(self, *, status: str):
        self.status = status
        super().__init__(
            f"The task has already {status.replace('_', ' ')}; it cannot be cancelled."
        )


class ActiveTaskLimitReached(TaskError):
    """The owner already has as many unfinished tasks as they may (TASKS_MAX_ACTIVE_PER_USER)."""

    http_status = 429

    def __init__(self, *, limit: int, requested: int = 1):
        self.limit = limit
        if requested == 1:
            said = f"You already have {limit} unfinished tasks, the most allowed at once"
        else:
            said = (
                f"These {requested} tasks would take you past {limit} unfinished tasks, "
                "the most allowed at once"
            )
        super().__init__(
            f"{said} (TASKS_MAX_ACTIVE_PER_USER); submit more once some have finished, "
            "or cancel some."
        )


class IdempotencyKeyReused(TaskError):
    """An Idempotency-Key came back with a different submission than the first time."""

    http_status = 422

    def __init__(self, *, key: str):
        self.key = key
        super().__init__(
            "This Idempotency-Key was already used for a different submission; "
            "use a new key for a new task."
        )


class IdempotencyKeyInvalid(TaskError):
    """The Idempotency-Key header is too long or holds control characters."""

    # Answered like a validation error of the header, as DRF reports a field.
    field = "Idempotency-Key"


class DeadLetterResolved(TaskError):
    """The dead letter was already requeued or discarded."""

    http_status = 409

    def __init__(self, *, resolution: str):
        self.status = resolution
        super().__init__(f"This dead letter was already {resolution}.")


class DeadLetterNotRequeueable(TaskError):
    """The task's type is started by its own app (e.g. document processing), not requeued here."""

    http_status = 409

    def __init__(self, *, task_type: str):
        self.status = "open"
        super().__init__(
            f"Tasks of type {task_type} are started by their own app and cannot be requeued "
            "from here (for documents: POST /api/v1/documents/<id>/reprocess)."
        )


class ApiKeyLimitReached(DomainError):
    """The user already holds as many unrevoked API keys as anyone may."""

    def __init__(self, *, limit: int):
        self.limit = limit
        super().__init__(
            f"You already have {limit} API keys, the most allowed; revoke one you no longer "
            "use, then create the new one."
        )


class CallbackUrlNotAllowed(DomainError):
    """A submit's callback_url the service will not send to."""

    field = "callback_url"


class TransientTaskError(Exception):
    """Raised by a task body for a failure that may pass (a busy service, a timeout).

    Task types list the transient errors they retry; anything else fails at once.
    """


class PermanentTaskError(Exception):
    """Raised by a task body for a failure that retrying cannot fix (bad data)."""


class EventStreamLimitReached(TaskError):
    """The caller holds as many open event streams as one user may (TASKS_EVENTS_MAX_STREAMS)."""

    http_status = 429

    def __init__(self, *, limit: int):
        self.limit = limit
        super().__init__(
            f"You already have {limit} task event streams open here, the most allowed at once; "
            "close one, or poll GET /api/v1/tasks/."
        )


class WorkflowInvalid(TaskError):
    """A workflow's definition that cannot run: each problem named, by step."""

    field = "steps"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(" ".join(problems))


class WorkflowNotCancellable(TaskError):
    """The workflow already succeeded or was cancelled."""

    http_status = 409

    def __init__(self, *, status: str):
        self.status = status
        super().__init__(f"The workflow has already {status}; it cannot be cancelled.")
