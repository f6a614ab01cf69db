"""The tasks pages: a person's tasks, one task, submitting and cancelling.

Reads go through tasks_app's selectors (which enforce ownership: another user's id is a
404, as in the API) and writes through its services. A page whose tasks are still moving
refreshes its live part by itself (htmx): when the page's owner's event stream
(GET /api/v1/tasks/events) says one of their tasks changed, or each second where the page
shows other people's tasks (staff), whose changes that stream does not carry. Without
JavaScript the forms still post and the page refreshes.
"""

import json
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from api.errors import DomainError
from api.pagination import NewestFirstPagination
from api.throttling import SubmitRateThrottle
from dashboard import forms
from dashboard.views.pages import back_or, live_updates, local_link
from tasks_app import events, selectors, services
from tasks_app.apis.tasks import TaskCollectionApi, TaskFilter
from tasks_app.models import ACTIVE_STATUSES, TaskRecord, TaskStatus
from tasks_app.task_types import UnknownTaskType, all_task_types, get_task_type

# The columns a row of the list shows.
LIST_FIELDS = (
    "id",
    "task_type",
    "status",
    "owner",
    "progress_current",
    "progress_total",
    "progress_message",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
)


class DashboardPages(NewestFirstPagination):
    """The API's cursor pages: stable while tasks are added, fast at any depth."""

    page_size = 25


def _visible_task_or_404(request, task_id, *, fields=()) -> TaskRecord:
    record = selectors.task_get_for_user(user=request.user, task_id=task_id, fields=fields)
    if record is None:
        raise Http404("No task with this id.")
    return record


@login_required
@require_GET
def task_list(request):
    since = events.cursor_of(timezone.now())
    records = selectors.task_list_for_user(user=request.user, fields=LIST_FIELDS)
    filtered = TaskFilter(request.GET, queryset=records)
    page, next_link, previous_link = [], None, None
    status_code = 200
    if filtered.is_valid():
        paginator = DashboardPages()
        try:
            page = paginator.paginate_queryset(filtered.qs, Request(request))
        except NotFound:
            raise Http404(
                "This page of the list does not exist (the cursor is not valid)."
            ) from None
        next_link = local_link(paginator.get_next_link())
        previous_link = local_link(paginator.get_previous_link())
    else:
        status_code = 400
    context = {
        "records": page,
        "filter_errors": filtered.errors,
        "statuses": TaskStatus.choices,
        "chosen_statuses": request.GET.getlist("status"),
        "chosen_type": request.GET.get("task_type", ""),
        "task_types": [spec.name for spec in all_task_types()],
        "next_link": next_link,
        "previous_link": previous_link,
        **live_updates(
            active=any(record.status in ACTIVE_STATUSES for record in page),
            own=not request.user.is_staff,  # staff's list shows everyone's tasks
            since=since,
        ),
    }
    template = "dashboard/_task_rows.html" if request.htmx else "dashboard/task_list.html"
    return render(request, template, context, status=status_code)


@login_required
@require_GET
def task_detail(request, task_id):
    since = events.cursor_of(timezone.now())
    record = _visible_task_or_404(request, task_id)
    context = {
        "record": record,
        "input_json": json.dumps(record.input, indent=2, sort_keys=True),
        "result_json": (
            json.dumps(record.result, indent=2, sort_keys=True)
            if record.result is not None
            else None
        ),
        "timeline": _timeline(record),
        # A workflow's step: the page names the step and links to its workflow.
        "workflow": (
            selectors.workflow_get_for_user(user=request.user, workflow_id=record.workflow_id)
            if record.workflow_id
            else None
        ),
        "dead_letter": (
            selectors.dead_letter_open_of_task(task=record) if request.user.is_staff else None
        ),
        **live_updates(
            active=record.status in ACTIVE_STATUSES,
            own=record.owner_id == request.user.pk,
            since=since,
        ),
    }
    template = "dashboard/_task_live.html" if request.htmx else "dashboard/task_detail.html"
    return render(request, template, context)


def _timeline(record: TaskRecord) -> list[dict]:
    """What happened to the task, oldest first: created, each failed attempt with its
    error and wait, the last start, the finish."""
    events = [{"at": record.created_at, "what": "Submitted", "detail": ""}]
    for entry in record.error_history:
        retry_in = entry.get("retry_in")
        wait = f"; retried after {retry_in:g} s" if retry_in is not None else ""
        # Kept as an ISO string in the JSON history; compared with the record's datetimes.
        failed_at = parse_datetime(str(entry.get("at") or "")) or record.created_at
        events.append(
            {
                "at": failed_at,
                "what": f"Attempt {entry.get('attempt')} failed",
                "detail": f"{entry.get('error_type')}: {entry.get('error_message')}{wait}",
            }
        )
    if record.started_at:
        worker = f" on {record.worker}" if record.worker else ""
        events.append(
            {
                "at": record.started_at,
                "what": f"Attempt {record.attempts} started{worker}",
                "detail": "",
            }
        )
    if record.finished_at:
        events.append({"at": record.finished_at, "what": record.get_status_display(), "detail": ""})
    return sorted(events, key=lambda event: event["at"])


@login_required
@require_GET
def task_result_download(request, task_id):
    record = _visible_task_or_404(request, task_id, fields=("id", "result", "status"))
    if record.status != TaskStatus.SUCCEEDED:
        raise Http404("This task has no result yet.")
    response = HttpResponse(
        json.dumps(record.result, indent=2, sort_keys=True), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="task-{record.pk}-result.json"'
    return response


@login_required
@require_POST
def task_cancel(request, task_id):
    record = _visible_task_or_404(request, task_id)
    try:
        services.task_cancel(record=record)
    except DomainError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Task {record.pk} is cancelled.")
    return redirect(back_or(request, reverse("dashboard:task-detail", args=[record.pk])))


@login_required
@require_GET
def task_submit_choose(request):
    return render(
        request,
        "dashboard/task_submit_choose.html",
        {"task_types": all_task_types(public_only=True)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def task_submit(request, task_type):
    try:
        spec = get_task_type(task_type)
    except UnknownTaskType:
        spec = None
    if spec is None or not spec.public:
        raise Http404("No task type with this name.")
    type_input = spec.input_serializer()
    if request.method == "GET":
        return _submit_form(
            request, spec, forms.input_fields(type_input), priority=str(spec.priority)
        )

    posted = request.POST
    # The API's limit on submits, counted in the same window: a page is no way around it.
    throttle = SubmitRateThrottle()
    api_request = Request(request)
    api_request.user = request.user
    if not throttle.allow_request(api_request, TaskCollectionApi):
        wait = throttle.wait()
        return _submit_form(
            request,
            spec,
            forms.fields_with_posted(type_input, posted, {}),
            priority=posted.get(forms.PRIORITY_FIELD, ""),
            problem=f"You are submitting too fast; try again in {wait or 1:.0f} s.",
            status=429,
        )
    type_errors: dict[str, list[str]]
    submission_input, type_errors = forms.input_from_form(type_input, posted)
    submission_data = {"task_type": spec.name, "input": submission_input}
    serializer = TaskCollectionApi.InputSerializer(data=submission_data)
    errors: dict = {}
    if not serializer.is_valid():
        problems = dict(serializer.errors)
        input_errors = problems.pop("input", {})
        if isinstance(input_errors, dict):
            errors.update(input_errors)
        else:
            problems["input"] = input_errors
        if problems:
            errors["non_field_errors"] = forms.error_messages(problems)
    # A field the form could not even read is missing from the input: its own error
    # ("enter a number") says more than "this field is required".
    errors.update(type_errors)
    # Checked on its own, so that its error shows with the input's (DRF stops at the
    # first level of a serializer with errors).
    priority = posted.get(forms.PRIORITY_FIELD, "").strip()
    try:
        priority_value = forms.priority_from_form(serializer.fields["priority"], priority)
    except serializers.ValidationError as error:
        errors[forms.PRIORITY_FIELD] = error.detail
    if errors:
        return _submit_form(
            request,
            spec,
            forms.fields_with_posted(type_input, posted, errors),
            priority=priority,
            priority_errors=forms.error_messages(errors.get("priority")),
            problem=" ".join(
                ["The task was not submitted: correct the fields below."]
                + forms.error_messages(errors.get("non_field_errors"))
            ),
            status=400,
        )
    try:
        submission = services.task_submit_once(
            owner=request.user,
            task_type=spec,
            input_data=serializer.validated_data["input"],
            priority=priority_value,
            # The form's own key, made when it was shown: a double click submits once.
            idempotency_key=posted.get(forms.IDEMPOTENCY_FIELD, ""),
        )
    except DomainError as error:
        return _submit_form(
            request,
            spec,
            forms.fields_with_posted(type_input, posted, {}),
            priority=priority,
            problem=str(error),
            status=error.http_status,
        )
    if not submission.replayed:
        messages.success(request, f"Submitted {spec.name}.")
    # 303: the browser follows with a GET, so a reload does not post the form again.
    return HttpResponseSeeOther(reverse("dashboard:task-detail", args=[submission.record.pk]))


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def _submit_form(
    request,
    spec,
    fields,
    *,
    priority: str,
    priority_errors: list[str] = (),
    problem: str = "",
    status: int = 200,
):
    return render(
        request,
        "dashboard/task_submit.html",
        {
            "spec": spec,
            "fields": fields,
            "priority": priority,
            "priority_errors": list(priority_errors),
            "problem": problem,
            # A new key each time the form is shown; a second post of this same form (a
            # double click, a resend) replays the first submission.
            "idempotency_key": uuid.uuid4().hex,
        },
        status=status,
    )
