"""Workflows: chains and groups of tasks, kept on records like single tasks.

A workflow runs in stages. A stage is one task (a chain's step) or several at once (a
group). The next stage starts when every step of the one before has succeeded, its input
built from the static ``input`` and, per field, a result it names in ``input_from``:

- ``"<stage>.result"``: an earlier single step's whole result;
- ``"<stage>.result.<key>[.<key>…]"``: one value inside it;
- ``"<stage>.results"``: an earlier group's results, a list in the order of its steps.

The guarantees are those of single tasks, because each step is a task record and the
workflow moves in the transaction of its steps' finishes (``workflow_step_finished``,
called by ``transitions.task_finish``): the next stage's records are inserted in the same
transaction as the finish that completes the stage, so a worker dying before that commit
runs the step again (it never finished), and one dying after it leaves the next stage in
the outbox, published by the relay. No step is lost; none is created twice.

A failed step fails the workflow, naming the step; its dead letter, requeued, runs the step
again as a new record of the same workflow, which goes on from there. Cancelling the
workflow cancels every step that has not finished.
"""

import logging
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from tasks_app import services, transitions
from tasks_app.errors import WorkflowInvalid, WorkflowNotCancellable
from tasks_app.models import ACTIVE_STATUSES, TaskRecord, TaskStatus, Workflow, WorkflowStatus
from tasks_app.task_types import UnknownTaskType, get_task_type

logger = logging.getLogger(__name__)

STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")
REFERENCE = re.compile(
    r"(?P<stage>[A-Za-z0-9_-]{1,50})\.(?:(?P<results>results)|result(?P<path>(\.[^.]+)*))"
)
FAILED_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT})


# --- The definition ------------------------------------------------------------------


def workflow_definition_check(steps: list[dict]) -> list[dict]:
    """The stages of ``steps`` (each a step, or ``{"name", "group": [steps]}``), checked:
    names unique, task types known and public, each input valid but for the fields
    ``input_from`` fills, each reference to an earlier stage of the right kind.

    Raises ``WorkflowInvalid`` naming every problem.
    """
    problems: list[str] = []
    stages: list[dict] = []
    seen_names: set[str] = set()
    stage_kinds: dict[str, str] = {}  # stage name -> "step" or "group"
    total = 0
    for position, item in enumerate(steps):
        is_group = "group" in item
        members = item["group"] if is_group else [item]
        name = item.get("name") or f"step{position + 1}"
        stage = {"name": name, "group": is_group, "steps": []}
        _check_name(name, seen_names, problems)
        for index, member in enumerate(members):
            step_name = member.get("name") or (f"{name}-{index + 1}" if is_group else name)
            if is_group:
                _check_name(step_name, seen_names, problems)
            step = _step_checked(member, step_name, position, stage_kinds, problems)
            stage["steps"].append(step)
            total += 1
        stage_kinds[name] = "group" if is_group else "step"
        stages.append(stage)
    if total > settings.WORKFLOWS_MAX_STEPS:
        problems.append(f"A workflow has at most {settings.WORKFLOWS_MAX_STEPS} steps ({total}).")
    if problems:
        raise WorkflowInvalid(problems)
    return stages


def _check_name(name: str, seen: set[str], problems: list[str]) -> None:
    if not STEP_NAME.fullmatch(name):
        problems.append(f"'{name}' is not a valid name: letters, digits, '-' and '_', up to 50.")
    elif name in seen:
        problems.append(f"Two steps or stages are named '{name}'.")
    seen.add(name)


def _step_checked(step: dict, name: str, position: int, kinds: dict, problems: list) -> dict:
    try:
        task_type = get_task_type(step["task_type"])
    except UnknownTaskType:
        task_type = None
    if task_type is None or not task_type.public:
        problems.append(f"Step '{name}': unknown task type '{step['task_type']}'.")
        return {"name": name}
    input_from = step.get("input_from") or {}
    fields = task_type.input_serializer().fields
    for field, reference in input_from.items():
        if field not in fields:
            problems.append(f"Step '{name}': its input has no field '{field}' to fill.")
        match = REFERENCE.fullmatch(str(reference))
        if match is None:
            problems.append(
                f"Step '{name}': '{reference}' is not '<stage>.result[.<key>…]' or "
                "'<stage>.results'."
            )
            continue
        kind = kinds.get(match["stage"])
        if kind is None:
            problems.append(f"Step '{name}': '{reference}' names no earlier stage.")
        elif kind == "group" and not match["results"]:
            problems.append(f"Step '{name}': '{match['stage']}' is a group: use '.results'.")
        elif kind == "step" and match["results"]:
            problems.append(f"Step '{name}': '{match['stage']}' is one step: use '.result'.")
    static = step.get("input") or {}
    overlap = set(static) & set(input_from)
    if overlap:
        problems.append(f"Step '{name}': {sorted(overlap)} are both given and filled in.")
    # Valid but for the fields filled in later: those are checked when the stage starts.
    serializer = task_type.input_serializer(data=static, partial=bool(input_from))
    if not serializer.is_valid():
        problems.append(f"Step '{name}': its input is not valid: {dict(serializer.errors)}.")
    missing = [
        field
        for field, spec in fields.items()
        if spec.required and field not in static and field not in input_from
    ]
    if missing:
        problems.append(f"Step '{name}': {missing} are required.")
    if position == 0 and input_from:
        problems.append(f"Step '{name}': the first stage has no earlier results to take.")
    return {
        "name": name,
        "task_type": task_type.name,
        "input": static,
        "input_from": input_from,
        "priority": step.get("priority"),
    }


# --- Submit, advance, cancel ------------------------------------------------------------


@transaction.atomic
def workflow_submit(*, owner: AbstractBaseUser, name: str, steps: list[dict]) -> Workflow:
    """Record a workflow and submit its first stage. Raises ``WorkflowInvalid``, and
    ``ActiveTaskLimitReached`` if the owner's first stage does not fit their limit."""
    stages = workflow_definition_check(steps)
    workflow = Workflow.objects.create(
        owner=owner,
        name=name,
        stages=stages,
        steps_total=sum(len(stage["steps"]) for stage in stages),
    )
    _stage_submit(workflow, 0, enforce_active_limit=True)
    logger.info("workflow submitted id=%s owner=%s stages=%s", workflow.pk, owner.pk, len(stages))
    return workflow


def _stage_submit(workflow: Workflow, index: int, *, enforce_active_limit: bool) -> None:
    stage = workflow.stages[index]
    # Earlier stages' results, read once for the whole stage, and only if a step asks.
    earlier: dict[str, TaskRecord] | None = None
    for step in stage["steps"]:
        if step["input_from"] and earlier is None:
            earlier = _latest_records(workflow, fields=("result",))
        try:
            task_type = get_task_type(step["task_type"])
        except UnknownTaskType:  # removed by a deploy since the workflow was submitted
            raise _StageInputInvalid(step["name"], {"task_type": "no longer exists"}) from None
        input_data = {**step["input"], **_filled_in(workflow, step["input_from"], earlier)}
        serializer = task_type.input_serializer(data=input_data)
        if not serializer.is_valid():
            raise _StageInputInvalid(step["name"], dict(serializer.errors))
        services.task_submit(
            owner=workflow.owner,
            task_type=task_type,
            input_data=serializer.validated_data,
            priority=step.get("priority"),
            enforce_active_limit=enforce_active_limit,
            workflow=workflow,
            workflow_step=step["name"],
        )


class _StageInputInvalid(Exception):
    def __init__(self, step: str, errors: dict):
        self.step = step
        super().__init__(
            f"Step '{step}' could not start: its input, filled in from earlier results, is "
            f"not valid: {errors}."
        )


def _filled_in(workflow: Workflow, input_from: dict, results: dict | None) -> dict:
    if not input_from:
        return {}
    filled = {}
    for field, reference in input_from.items():
        match = REFERENCE.fullmatch(reference)
        stage = next(s for s in workflow.stages if s["name"] == match["stage"])
        if match["results"]:
            filled[field] = [results[step["name"]].result for step in stage["steps"]]
            continue
        value: Any = results[stage["steps"][0]["name"]].result
        for key in filter(None, (match["path"] or "").split(".")):
            value = value.get(key) if isinstance(value, dict) else None
        filled[field] = value
    return filled


def _latest_records(
    workflow: Workflow, *, fields: tuple[str, ...], steps: list[str] | None = None
) -> dict[str, TaskRecord]:
    """Each step's latest record (a requeued step has several), of ``steps`` only if given,
    with only ``fields`` loaded besides the step's name: a step's input and result can be
    large, and a group's every finish asks."""
    records = TaskRecord.objects.filter(workflow=workflow)
    if steps is not None:
        records = records.filter(workflow_step__in=steps)
    latest: dict[str, TaskRecord] = {}
    for record in records.only("workflow_step", *fields).order_by("created_at", "id"):
        latest[record.workflow_step] = record
    return latest


def workflow_step_finished(record: TaskRecord) -> None:
    """Move the workflow after one of its steps reached a final status, in that finish's
    transaction (``transitions.on_workflow_step_finished``)."""
    workflow = Workflow.objects.select_for_update().get(pk=record.workflow_id)
    if record.status == TaskStatus.CANCELLED:
        _cancel(workflow, reason=f"Its step '{record.workflow_step}' was cancelled.")
        return
    if record.status in FAILED_STATUSES:
        _fail(workflow, step=record.workflow_step, error=record.error_message)
        return
    Workflow.objects.filter(pk=workflow.pk).update(steps_done=F("steps_done") + 1)
    if workflow.status != WorkflowStatus.RUNNING:
        return
    stage = workflow.stages[workflow.current_stage]
    names = [step["name"] for step in stage["steps"]]
    # The results only once every step has succeeded: this stage's last finish.
    latest = _latest_records(workflow, fields=("status", "error_message"), steps=names)
    stage_records = [latest.get(name) for name in names]
    failed = [r for r in stage_records if r is not None and r.status in FAILED_STATUSES]
    if failed:  # a sibling failed before: the workflow waits for its requeue
        _fail(workflow, step=failed[0].workflow_step, error=failed[0].error_message)
        return
    if any(r is None or r.status != TaskStatus.SUCCEEDED for r in stage_records):
        return  # siblings still running
    following = workflow.current_stage + 1
    if following == len(workflow.stages):
        finished = _latest_records(workflow, fields=("result",), steps=names)
        results = [finished[name].result for name in names]
        Workflow.objects.transition(
            pk=workflow.pk,
            to=WorkflowStatus.SUCCEEDED,
            result=results if stage["group"] else results[0],
            finished_at=timezone.now(),
        )
        logger.info("workflow succeeded id=%s", workflow.pk)
        return
    Workflow.objects.filter(pk=workflow.pk).update(current_stage=following)
    workflow.current_stage = following
    try:
        # Inside this finish's transaction: a later step never waits on its owner's limit
        # of unfinished tasks (the workflow was admitted whole).
        with transaction.atomic():
            _stage_submit(workflow, following, enforce_active_limit=False)
    except _StageInputInvalid as error:
        _fail(workflow, step=error.step, error=str(error))


def _fail(workflow: Workflow, *, step: str, error: str) -> None:
    if Workflow.objects.transition(
        pk=workflow.pk,
        to=WorkflowStatus.FAILED,
        failed_step=step,
        error_message=f"Step '{step}' failed: {error}"[:5000],
    ):
        logger.warning("workflow failed id=%s step=%s", workflow.pk, step)


def _cancel(workflow: Workflow, *, reason: str) -> bool:
    if not Workflow.objects.transition(
        pk=workflow.pk,
        to=WorkflowStatus.CANCELLED,
        error_message=reason,
        finished_at=timezone.now(),
    ):
        return False
    # Its unfinished steps too; each of their finishes finds the workflow cancelled. A
    # step whose row is locked is being finished by its worker, which holds that lock and
    # waits for the workflow's: taking it here would deadlock. That finish then finds the
    # workflow cancelled, and starts nothing.
    unfinished = TaskRecord.objects.filter(workflow=workflow, status__in=ACTIVE_STATUSES)
    if connection.features.has_select_for_update_skip_locked:
        unfinished = unfinished.select_for_update(skip_locked=True)
    for task_id in unfinished.values_list("pk", flat=True):
        transitions.task_finish(
            task_id=task_id, to=TaskStatus.CANCELLED, cancel_requested_at=timezone.now()
        )
    logger.info("workflow cancelled id=%s: %s", workflow.pk, reason)
    return True


@transaction.atomic
def workflow_cancel(*, workflow: Workflow) -> Workflow:
    """Cancel a running or failed workflow and every step of it not finished. Raises
    ``WorkflowNotCancellable`` for one that succeeded; cancelling twice changes nothing."""
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if locked.status == WorkflowStatus.SUCCEEDED:
        raise WorkflowNotCancellable(status=locked.status)
    _cancel(locked, reason="Cancelled by its owner.")
    workflow.refresh_from_db()
    return workflow


def workflow_step_requeued(*, record: TaskRecord) -> None:
    """A failed step's dead letter was requeued as ``record``: the workflow runs again."""
    Workflow.objects.transition(
        pk=record.workflow_id, to=WorkflowStatus.RUNNING, failed_step="", error_message=""
    )


def connect() -> None:
    """Called from the app's ready(): finishes of workflow steps move their workflow."""
    transitions.on_workflow_step_finished(workflow_step_finished)
