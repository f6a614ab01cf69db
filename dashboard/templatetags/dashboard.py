"""Pieces every dashboard page shows the same way: status badges, progress bars, times,
cancel buttons."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince
from markdown_it import MarkdownIt

from documents.models import DocumentStatus
from operations.models import HealthStatus
from tasks_app.models import ACTIVE_STATUSES, TaskRecord, TaskStatus, Workflow, WorkflowStatus

register = template.Library()

# CommonMark with raw HTML turned off: any HTML in the text is shown as text, and links
# to javascript: and the like are left out (markdown-it's own link check).
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


@register.filter
def markdown(text: str) -> SafeString:
    """A task type's description (its docstring: `code`, paragraphs) as HTML."""
    return mark_safe(_MARKDOWN.render(text or ""))  # noqa: S308 - escaped by markdown-it


@register.filter
def is_active(record: TaskRecord) -> bool:
    """Not finished yet: it may still move, and can be cancelled."""
    return record.status in ACTIVE_STATUSES


@register.inclusion_tag("dashboard/_status_badge.html")
def status_badge(status: str) -> dict:
    return {"status": status, "label": TaskStatus(status).label}


@register.inclusion_tag("dashboard/_status_badge.html")
def document_badge(status: str) -> dict:
    return {"status": status, "label": DocumentStatus(status).label}


@register.inclusion_tag("dashboard/_status_badge.html")
def workflow_badge(status: str) -> dict:
    return {"status": status, "label": WorkflowStatus(status).label}


@register.inclusion_tag("dashboard/_status_badge.html")
def health_badge(status: str) -> dict:
    return {"status": status, "label": HealthStatus(status).label}


@register.inclusion_tag("dashboard/_progress_bar.html")
def progress_bar(record: TaskRecord) -> dict:
    return {
        "current": record.progress_current,
        "total": record.progress_total,
        "percent": record.progress_percent,
        "record_id": record.pk,
    }


@register.inclusion_tag("dashboard/_progress_bar.html")
def workflow_progress(workflow: Workflow) -> dict:
    """Steps done out of steps, drawn as a task's progress is."""
    done, total = workflow.steps_done, workflow.steps_total
    return {
        "current": done,
        "total": total,
        "percent": round(min(100.0, 100.0 * done / total), 1) if total else None,
        "record_id": workflow.pk,
    }


@register.inclusion_tag("dashboard/_relative_time.html")
def relative_time(moment) -> dict:
    # Error history entries keep their times as ISO strings (JSON).
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    if not isinstance(moment, datetime):
        return {"moment": None}
    now = timezone.now()
    if (now - moment).total_seconds() < 60:
        return {"moment": moment, "ago": "just now"}
    return {"moment": moment, "ago": timesince(moment, now)}


@register.inclusion_tag("dashboard/_cancel_button.html", takes_context=True)
def cancel_button(context, record: TaskRecord, back: str) -> dict:
    return {"record": record, "back": back, "csrf_token": context.get("csrf_token")}
