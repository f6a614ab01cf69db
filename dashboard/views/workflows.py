"""The workflows pages: a person's workflows (chains and groups of tasks), one workflow
with its stages and their steps' tasks, and cancelling one.

Reads go through tasks_app's selectors (another user's workflow is a 404, as in the API;
staff see everyone's) and the cancel through its workflows service. A running workflow
moves when one of its steps' tasks changes, so its page (and a list showing one) refreshes
on its owner's task events, as the tasks pages do, or each second where the page shows
someone else's (staff).
"""

import json
from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard.views.pages import cursor_page, live_updates
from tasks_app import events, selectors, workflows
from tasks_app.apis.workflows import WorkflowFilter
from tasks_app.errors import WorkflowNotCancellable
from tasks_app.models import TaskRecord, Workflow, WorkflowStatus

# A failed workflow waits for its failed step's requeue (staff), and may still be cancelled.
CANCELLABLE = (WorkflowStatus.RUNNING, WorkflowStatus.FAILED)


def _workflow_or_404(request, workflow_id) -> Workflow:
    workflow = selectors.workflow_get_for_user(user=request.user, workflow_id=workflow_id)
    if workflow is None:
        raise Http404("No workflow with this id.")
    return workflow


@login_required
@require_GET
def workflow_list(request):
    since = events.cursor_of(timezone.now())
    filtered = WorkflowFilter(
        request.GET, queryset=selectors.workflow_list_for_user(user=request.user)
    )
    page, links, status = [], {}, 400
    if filtered.is_valid():
        page, links = cursor_page(request, filtered.qs)
        status = 200
    context = {
        "nav": "workflows",
        "workflows": page,
        "filter_errors": filtered.errors,
        "statuses": WorkflowStatus.choices,
        "chosen_statuses": request.GET.getlist("status"),
        **links,
        **live_updates(
            active=any(workflow.status == WorkflowStatus.RUNNING for workflow in page),
            own=not request.user.is_staff,  # staff's list shows everyone's workflows
            since=since,
        ),
    }
    template = "dashboard/_workflow_rows.html" if request.htmx else "dashboard/workflow_list.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def workflow_detail(request, workflow_id):
    since = events.cursor_of(timezone.now())
    workflow = _workflow_or_404(request, workflow_id)
    context = {
        "nav": "workflows",
        "workflow": workflow,
        "stages": _stages(workflow),
        "result_json": None
        if workflow.result is None
        else json.dumps(workflow.result, indent=2, sort_keys=True),
        "cancellable": workflow.status in CANCELLABLE,
        **live_updates(
            active=workflow.status == WorkflowStatus.RUNNING,
            own=workflow.owner_id == request.user.pk,
            since=since,
        ),
    }
    template = "dashboard/_workflow_live.html" if request.htmx else "dashboard/workflow_detail.html"
    return render(request, template, context)


def _stages(workflow: Workflow) -> list[dict]:
    """The workflow's stages in order, each with its steps; a step with its latest task
    (None before its stage started) and its earlier ones (a failed step requeued)."""
    tries: dict[str, list[TaskRecord]] = defaultdict(list)
    for record in selectors.workflow_step_records(workflow=workflow):
        tries[record.workflow_step].append(record)
    return [
        {
            "number": index + 1,
            "name": stage["name"],
            "group": stage["group"],
            "steps": [
                {
                    "name": step["name"],
                    "task_type": step["task_type"],
                    "task": tries[step["name"]][-1] if tries[step["name"]] else None,
                    "earlier_tasks": tries[step["name"]][:-1],
                }
                for step in stage["steps"]
            ],
        }
        for index, stage in enumerate(workflow.stages)
    ]


@login_required
@require_POST
def workflow_cancel(request, workflow_id):
    workflow = _workflow_or_404(request, workflow_id)
    try:
        workflows.workflow_cancel(workflow=workflow)
    except WorkflowNotCancellable as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Workflow {workflow.name or workflow.pk} is cancelled, with its steps that had not "
            "finished.",
        )
    return redirect("dashboard:workflow-detail", workflow_id=workflow.pk)
