"""HTTP API of task records: submit, list, poll, cancel, and the catalogue of task types.

Views validate, call one service or selector, and serialize. Ownership lives in the
selectors, domain errors become HTTP in ``exception_handlers``.
"""

import math
import re

import django_filters
from django.conf import settings
from django.http import Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.metadata import SimpleMetadata
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import NewestFirstPagination, filtered_page_response
from api.parsers import BoundedJSONParser
from api.schema import ErrorSerializer
from api.serializers import json_type_errors
from api.throttling import SubmitRateThrottle
from tasks_app import announcements, selectors, services
from tasks_app.errors import CallbackUrlNotAllowed
from tasks_app.idempotency import IDEMPOTENCY_KEY_MAX_LENGTH
from tasks_app.models import TaskRecord, TaskStatus
from tasks_app.task_types import UnknownTaskType, all_task_types, get_task_type

NOT_CANCELLABLE = OpenApiResponse(
    ErrorSerializer, description="The task has finished; its status is in the body."
)
# Reversed in the place of a record's id, once per response (see _url_of).
_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


# Each field of a task, with the record columns it is read from (a column left out would
# cost a query per record on a list page: test_apis counts them).
_COLUMNS_OF_FIELD = {
    "id": ("id",),
    "task_type": ("task_type",),
    "status": ("status",),
    "owner": ("owner",),
    "queue": ("queue",),
    "priority": ("priority",),
    "input": ("input",),
    "progress": ("progress_current", "progress_total", "progress_message"),
    "result": ("result",),
    "error": ("error_type", "error_message"),
    "attempts": ("attempts",),
    "created_at": ("created_at",),
    "started_at": ("started_at",),
    "finished_at": ("finished_at",),
    "cancel_requested_at": ("cancel_requested_at",),
    "callback_url": ("callback_url",),
    "workflow": ("workflow", "workflow_step"),
    "links": (),  # made of the id
}


# How the serializer's date fields render (ISO 8601, Z for UTC), without building its
# fields: ``self.fields`` maps every model field to a serializer field, per serializer
# instance, which cost a one-record answer (a submit, a poll) more than the rest of it.
_AS_TIME = serializers.DateTimeField(read_only=True)


@extend_schema_serializer(component_name="Task")
class TaskRecordOutputSerializer(serializers.ModelSerializer):
    # A method, not CharField(source="owner.get_username"): DRF inspects the signature of a
    # callable source for every record, a third of a list page's serializing.
    owner = serializers.SerializerMethodField()
    progress = serializers.DictField(read_only=True)
    error = serializers.SerializerMethodField()
    workflow = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = TaskRecord
        fields = list(_COLUMNS_OF_FIELD)

    # The columns the fields read: polls and list pages fetch only these.
    record_fields = tuple(column for columns in _COLUMNS_OF_FIELD.values() for column in columns)

    def to_representation(self, record: TaskRecord) -> dict:
        # DRF's generic loop (reading each field through its source, with a check for
        # callables) cost more than the values' own conversion: a third of a list page.
        # The same fields read directly; test_apis checks it against the generic loop.
        as_time = _AS_TIME.to_representation
        return {
            "id": str(record.id),
            "task_type": record.task_type,
            "status": record.status,
            "owner": self.get_owner(record),
            "queue": record.queue,
            "priority": record.priority,
            "input": record.input,
            "progress": record.progress,
            "result": record.result,
            "error": self.get_error(record),
            "attempts": record.attempts,
            "created_at": as_time(record.created_at),
            "started_at": as_time(record.started_at),
            "finished_at": as_time(record.finished_at),
            "cancel_requested_at": as_time(record.cancel_requested_at),
            "callback_url": record.callback_url,
            "workflow": self.get_workflow(record),
            "links": self.get_links(record),
        }

    def get_owner(self, record: TaskRecord) -> str:
        return record.owner.get_username()

    def get_error(self, record: TaskRecord) -> dict | None:
        if not record.error_type:
            return None
        return {"type": record.error_type, "message": record.error_message}

    def get_workflow(self, record: TaskRecord) -> dict | None:
        """The workflow this task is a step of: its id, the step's name, its URL."""
        if record.workflow_id is None:
            return None
        return {
            "id": str(record.workflow_id),
            "step": record.workflow_step,
            "url": self._url_of("workflow-detail", record.workflow_id),
        }

    def get_links(self, record: TaskRecord) -> dict:
        return {
            "self": self._url_of("task-detail", record.pk),
            "cancel": self._url_of("task-cancel", record.pk),
        }

    def _url_of(self, view_name: str, pk) -> str:
        # reverse() and build_absolute_uri() once per response, not twice per record: they
        # were a third of a list page's time.
        templates = self.context.setdefault("url_templates", {})
        if view_name not in templates:
            path = reverse(view_name, args=[_ID_PLACEHOLDER])
            templates[view_name] = self.context["request"].build_absolute_uri(path)
        return templates[view_name].replace(_ID_PLACEHOLDER, str(pk))


class TaskFilter(django_filters.FilterSet):
    # distinct=False: a record has one status, so ``status IN (…)`` repeats no row; the
    # default DISTINCT made PostgreSQL sort every match on all columns before the page.
    status = django_filters.MultipleChoiceFilter(choices=TaskStatus.choices, distinct=False)
    task_type = django_filters.CharFilter()

    class Meta:
        model = TaskRecord
        fields = ["status", "task_type"]


def _idempotency_key_header(what_a_repeat_gets: str) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key",
        str,
        OpenApiParameter.HEADER,
        description=f"Repeat a submission safely: {what_a_repeat_gets}. "
        f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters, no control characters.",
        pattern=r"^[^\x00-\x1f\x7f]{0,255}$",
    )


def _idempotency_key_reused(what: str) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorSerializer, description=f"The Idempotency-Key was used before for a different {what}."
    )


def _replay_headers(replayed: bool | None) -> dict[str, str]:
    """``Idempotent-Replayed`` when the client sent a key (``replayed`` is None without)."""
    if replayed is None:
        return {}
    return {"Idempotent-Replayed": "true" if replayed else "false"}


class TaskCollectionApi(APIView):
    """GET lists the caller's tasks; POST submits a new one."""

    parser_classes = [BoundedJSONParser]
    throttle_classes = [SubmitRateThrottle]
    throttle_scope = "task_submit"
    # The list's filters and pages, named as DRF's generic views name them, so that the
    # schema documents them; the queryset only tells it the model (rows come from selectors).
    filter_backends = [DjangoFilterBackend]
    filterset_class = TaskFilter
    pagination_class = NewestFirstPagination
    queryset = TaskRecord.objects.none()

    @extend_schema_serializer(component_name="TaskSubmission")
    class InputSerializer(serializers.Serializer):
        task_type = serializers.CharField(max_length=100)
        input = serializers.DictField(default=dict)
        priority = serializers.IntegerField(min_value=0, max_value=9, required=False)
        callback_url = serializers.CharField(
            max_length=2000,
            required=False,
            default="",
            allow_blank=True,
            help_text="Where to POST this task's end as a signed webhook (docs/webhooks.md), "
            "besides your webhook endpoints.",
        )

        def validate_callback_url(self, url: str) -> str:
            if not url:
                return ""
            try:
                return announcements.callback_url_clean(url)
            except CallbackUrlNotAllowed as error:
                raise serializers.ValidationError(str(error)) from None

        def validate_task_type(self, name: str):
            try:
                spec = get_task_type(name)
            except UnknownTaskType:
                spec = None
            if spec is None or not spec.public:
                known = ", ".join(spec.name for spec in all_task_types(public_only=True))
                raise serializers.ValidationError(
                    f"Unknown task type '{name}'. Known types: {known}."
                )
            return spec

        def to_internal_value(self, data):
            if errors := json_type_errors(self.fields, data):
                raise serializers.ValidationError(errors)
            return super().to_internal_value(data)

        def validate(self, attrs: dict) -> dict:
            type_input = self._input_serializer_of(attrs["task_type"])
            if errors := json_type_errors(type_input.fields, attrs["input"]):
                raise serializers.ValidationError({"input": errors})
            try:
                validated = type_input.run_validation(attrs["input"])
            except serializers.ValidationError as error:
                raise serializers.ValidationError({"input": error.detail}) from None
            # DRF's FloatField turns the strings "NaN" and "Infinity" into floats, and NaN
            # passes every min/max check; the record could store them but never render them.
            not_finite = {
                name: ["A finite number is required."]
                for name, value in validated.items()
                if isinstance(value, float) and not math.isfinite(value)
            }
            if not_finite:
                raise serializers.ValidationError({"input": not_finite})
            attrs["input"] = validated
            return attrs

        def _input_serializer_of(self, spec):
            """One input serializer per task type for this serializer's life: a batch
            validates its items with one instance (``many=True``), and building a
            serializer's fields for each of a thousand items would cost more than the
            insert."""
            cache = self.__dict__.setdefault("_input_serializers", {})
            if spec.name not in cache:
                cache[spec.name] = spec.input_serializer()
            return cache[spec.name]

    @extend_schema(responses={200: TaskRecordOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.task_list_for_user(
                user=request.user, fields=TaskRecordOutputSerializer.record_fields
            ),
            serializer_class=TaskRecordOutputSerializer,
        )

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="TaskSubmission",
            serializers=lambda: _submission_per_task_type(),
            resource_type_field_name="task_type",
        ),
        parameters=[_idempotency_key_header("the same key returns the first task")],
        responses={202: TaskRecordOutputSerializer, 422: _idempotency_key_reused("submission")},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        submission = services.task_submit_once(
            owner=request.user,
            task_type=serializer.validated_data["task_type"],
            input_data=serializer.validated_data["input"],
            priority=serializer.validated_data.get("priority"),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            callback_url=serializer.validated_data["callback_url"],
        )
        data = TaskRecordOutputSerializer(submission.record, context={"request": request}).data
        headers = {"Location": data["links"]["self"], **_replay_headers(submission.replayed)}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers=headers)


class TaskBatchApi(APIView):
    """POST submits up to TASKS_BATCH_MAX_TASKS tasks in one request, all or none."""

    parser_classes = [BoundedJSONParser]
    throttle_classes = [SubmitRateThrottle]
    throttle_scope = "task_submit"

    class InputSerializer(serializers.Serializer):
        # Each item as POST /api/v1/tasks/ takes one. Every item is checked, so the client
        # hears of every mistake at once: the errors come as a list in the order of the
        # items, {} for those that are fine.
        tasks = TaskCollectionApi.InputSerializer(many=True, allow_empty=False)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fields["tasks"].max_length = settings.TASKS_BATCH_MAX_TASKS

        def validate_tasks(self, items: list[dict]) -> list[services.TaskRequest]:
            return [
                services.TaskRequest(
                    task_type=item["task_type"],
                    input_data=item["input"],
                    priority=item.get("priority"),
                    callback_url=item["callback_url"],
                )
                for item in items
            ]

    @extend_schema_serializer(component_name="TaskBatch")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="batch.id")
        count = serializers.SerializerMethodField()
        tasks = serializers.SerializerMethodField()

        def get_count(self, submission) -> int:
            return len(submission.records)

        @extend_schema_field(
            inline_serializer(
                "TaskBatchItem",
                {
                    "id": serializers.UUIDField(),
                    "task_type": serializers.CharField(),
                    "status": serializers.ChoiceField(choices=TaskStatus.choices),
                    "links": serializers.DictField(child=serializers.URLField()),
                },
                many=True,
            )
        )
        def get_tasks(self, submission) -> list[dict]:
            # Plain dicts, not the full Task shape: a thousand of those would cost more
            # than the insert. Each task's link gives the rest.
            request = self.context["request"]
            detail = request.build_absolute_uri(reverse("task-detail", args=["0"]))[:-2]
            return [
                {
                    "id": str(record.pk),
                    "task_type": record.task_type,
                    "status": record.status,
                    "links": {
                        "self": f"{detail}{record.pk}/",
                        "cancel": f"{detail}{record.pk}/cancel/",
                    },
                }
                for record in submission.records
            ]

    @extend_schema(
        request=inline_serializer(
            "TaskBatchSubmission",
            {
                # The limit as configured when the schema module loads (the schema is
                # built from it once per process).
                "tasks": serializers.ListField(
                    child=PolymorphicProxySerializer(
                        component_name="TaskSubmission",
                        serializers=lambda: _submission_per_task_type(),
                        resource_type_field_name="task_type",
                    ),
                    min_length=1,
                    max_length=settings.TASKS_BATCH_MAX_TASKS,
                )
            },
        ),
        parameters=[_idempotency_key_header("the same key returns the first batch's tasks")],
        responses={
            202: OutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Nothing was submitted; ``tasks`` lists each item's errors, {} for "
                "the items that were fine.",
            ),
            422: _idempotency_key_reused("batch"),
            429: OpenApiResponse(
                ErrorSerializer,
                description="The batch would pass the owner's limit of unfinished tasks.",
            ),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        submission = services.tasks_submit_batch_once(
            owner=request.user,
            requests=serializer.validated_data["tasks"],
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        data = self.OutputSerializer(submission, context={"request": request}).data
        return Response(
            data, status=status.HTTP_202_ACCEPTED, headers=_replay_headers(submission.replayed)
        )


def _submission_per_task_type() -> dict[str, serializers.Serializer]:
    """For the schema: one submission shape per public task type, with that type's own
    input, told apart by ``task_type``. InputSerializer checks the same at run time."""
    shapes = {}
    for spec in all_task_types(public_only=True):
        type_input = spec.input_serializer()
        name = "".join(part.title() for part in re.split(r"[._]", spec.name))
        shapes[spec.name] = inline_serializer(
            f"{name}Submission",
            {
                "task_type": serializers.ChoiceField(choices=[spec.name]),
                # Optional where every input field is: the input then defaults to {}.
                "input": spec.input_serializer(
                    required=any(field.required for field in type_input.fields.values())
                ),
                "priority": serializers.IntegerField(min_value=0, max_value=9, required=False),
            },
        )
    return shapes


def _get_visible_task_or_404(request, task_id, *, fields=()) -> TaskRecord:
    record = selectors.task_get_for_user(user=request.user, task_id=task_id, fields=fields)
    if record is None:
        raise Http404("No task with this id.")
    return record


class TaskDetailApi(APIView):
    """GET polls one task. DELETE is an alias of ``POST …/cancel/``, kept for older clients
    and marked deprecated in the schema."""

    @extend_schema(responses={200: TaskRecordOutputSerializer})
    def get(self, request, task_id):
        record = _get_visible_task_or_404(
            request, task_id, fields=TaskRecordOutputSerializer.record_fields
        )
        return Response(TaskRecordOutputSerializer(record, context={"request": request}).data)

    @extend_schema(
        summary="Alias of POST /api/v1/tasks/{task_id}/cancel/",
        description="Kept for older clients; cancel with the POST.",
        deprecated=True,
        responses={200: TaskRecordOutputSerializer, 409: NOT_CANCELLABLE},
    )
    def delete(self, request, task_id):
        return _cancel(request, task_id)


class TaskCancelApi(APIView):
    """POST cancels a task that has not finished yet; cancelling twice is harmless."""

    @extend_schema(request=None, responses={200: TaskRecordOutputSerializer, 409: NOT_CANCELLABLE})
    def post(self, request, task_id):
        return _cancel(request, task_id)


def _cancel(request, task_id) -> Response:
    record = services.task_cancel(record=_get_visible_task_or_404(request, task_id))
    return Response(TaskRecordOutputSerializer(record, context={"request": request}).data)


class TaskTypeListApi(APIView):
    """What can be submitted: each task type with its queue, limits and input fields."""

    @extend_schema_serializer(component_name="TaskType")
    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        description = serializers.CharField()
        queue = serializers.CharField()
        priority = serializers.IntegerField()
        soft_time_limit = serializers.IntegerField(allow_null=True)
        time_limit = serializers.IntegerField(allow_null=True)
        max_retries = serializers.IntegerField(source="retry.max_retries")
        input_schema = serializers.SerializerMethodField()

        def get_input_schema(self, spec) -> dict:
            # DRF's own description of serializer fields (the same as OPTIONS requests).
            return SimpleMetadata().get_serializer_info(spec.input_serializer())

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request):
        specs = all_task_types(public_only=True)
        return Response(self.OutputSerializer(specs, many=True).data)
