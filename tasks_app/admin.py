import uuid

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse

from tasks_app import admission, dead_letters, services, tokens, workflows
from tasks_app.errors import TaskNotCancellable, WorkflowNotCancellable
from tasks_app.models import (
    ApiKey,
    DeadLetter,
    PoolStall,
    TaskQuota,
    TaskRecord,
    UserToken,
    Workflow,
)


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    """Read-only: records change only through the services (state machine), here by action."""

    list_display = [
        "id",
        "task_type",
        "status",
        "owner",
        "queue",
        "progress",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "task_type", "queue", "owner"]
    search_fields = ["id", "owner__username"]  # see get_search_results
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    actions = ["cancel_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "task_type",
                    "status",
                    "owner",
                    "queue",
                    "priority",
                    "worker",
                    "requeued_from",
                    "idempotency_key",
                ]
            },
        ),
        ("Progress", {"fields": ["progress_current", "progress_total", "progress_message"]}),
        (
            "Input and outcome",
            {
                "fields": [
                    "input",
                    "result",
                    "error_type",
                    "error_message",
                    "error_traceback",
                    "error_history",
                ]
            },
        ),
        (
            "Timeline",
            {
                "fields": [
                    "attempts",
                    "created_at",
                    "dispatched_at",
                    "started_at",
                    "heartbeat_at",
                    "next_attempt_at",
                    "finished_at",
                    "cancel_requested_at",
                ]
            },
        ),
    ]

    def get_search_results(self, request, queryset, search_term):
        # A search is either a task id (exact) or part of an owner's username.
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            return queryset.filter(owner__username__icontains=term), False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in TaskRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, record: TaskRecord) -> str:
        percent = record.progress_percent
        return "" if percent is None else f"{percent}%"

    @admin.action(description="Cancel selected tasks")
    def cancel_selected(self, request, queryset):
        cancelled, not_cancellable = 0, 0
        for record in queryset:
            try:
                services.task_cancel(record=record)
                cancelled += 1
            except TaskNotCancellable:
                not_cancellable += 1
        self.message_user(request, f"Cancelled {cancelled} task(s).", messages.SUCCESS)
        if not_cancellable:
            self.message_user(
                request, f"{not_cancellable} task(s) had already finished.", messages.WARNING
            )


class ShownOnceAdminMixin:
    """Adding a credential whose secret is shown once, in the response to the add form.

    Django's admin would redirect and carry a message to the next page; messages travel
    in a cookie (or the session), which would keep the secret stored on the client. Here
    it exists only in this one response (the admin sends it with ``Cache-Control:
    no-store``), and the database keeps a digest.
    """

    shown_once_template = "admin/tasks_app/shown_once.html"
    # How a client sends the secret, e.g. "X-API-Key: {secret}".
    usage: str

    def issue(self, obj) -> str:
        """Create the credential described by the unsaved ``obj``; return its raw secret."""
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Kept on this instance only, which response_add receives next.
        obj.secret_shown_once = self.issue(obj)

    def response_add(self, request, obj, post_url_continue=None):
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": f"{opts.verbose_name.capitalize()} created",
            "object": obj,
            "secret": obj.secret_shown_once,
            "usage": self.usage.format(secret=obj.secret_shown_once),
            "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        }
        return TemplateResponse(request, self.shown_once_template, context)


@admin.register(ApiKey)
class ApiKeyAdmin(ShownOnceAdminMixin, admin.ModelAdmin):
    list_display = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "owner__username"]
    fields = ["owner", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    usage = "X-API-Key: {secret}"

    def issue(self, obj) -> str:
        api_key, raw_key = services.api_key_create(owner=obj.owner, name=obj.name)
        obj.pk, obj.prefix, obj.key_digest = api_key.pk, api_key.prefix, api_key.key_digest
        return raw_key


@admin.register(UserToken)
class UserTokenAdmin(ShownOnceAdminMixin, admin.ModelAdmin):
    """Issue a token for a user (shown once); delete one to revoke it. Nothing to edit."""

    list_display = ["user", "created_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    readonly_fields = ["created_at"]
    usage = "Authorization: Token {secret}"

    def get_fields(self, request, obj=None):
        return ["user"] if obj is None else ["user", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def issue(self, obj) -> str:
        token, raw_key = tokens.user_token_issue(user=obj.user)
        obj.pk, obj.key_digest, obj.created_at = token.pk, token.key_digest, token.created_at
        return raw_key


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Read-only: staff act on dead letters only through the requeue and discard actions."""

    list_display = [
        "task_id",
        "task_type",
        "owner",
        "final_status",
        "error_type",
        "resolution",
        "created_at",
    ]
    list_filter = ["resolution", "task_type", "final_status"]
    search_fields = ["task__id", "owner__username", "error_message"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    actions = ["requeue_selected", "discard_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in DeadLetter._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Requeue selected dead letters (a new task each)")
    def requeue_selected(self, request, queryset):
        self._resolve(request, queryset, action="requeue", done="requeued")

    @admin.action(description="Discard selected dead letters")
    def discard_selected(self, request, queryset):
        self._resolve(request, queryset, action="discard", done="discarded")

    def _resolve(self, request, queryset, *, action: str, done: str) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        outcomes = dead_letters.dead_letters_resolve(action=action, ids=ids, by=request.user)
        resolved = sum(1 for outcome in outcomes.values() if outcome == done)
        self.message_user(
            request, f"{done.capitalize()} {resolved} dead letter(s).", messages.SUCCESS
        )
        if skipped := len(outcomes) - resolved:
            self.message_user(
                request,
                f"{skipped} were skipped: already resolved, or restarted by their own app.",
                messages.WARNING,
            )


@admin.register(PoolStall)
class PoolStallAdmin(admin.ModelAdmin):
    """Read-only: written by the workers' watchdog, kept for the health view and for people."""

    list_display = ["detected_at", "worker", "pid", "task_type", "task_id", "waited_seconds"]
    list_filter = ["worker", "task_type"]
    search_fields = ["task_id", "worker"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TaskQuota)
class TaskQuotaAdmin(admin.ModelAdmin):
    """Per-user limits instead of TASKS_MAX_ACTIVE_PER_USER / TASKS_MAX_RUNNING_PER_USER."""

    list_display = ["user", "max_active", "max_running"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # A raised running limit frees slots now, not at the next reconciliation.
        admission.tasks_admit_waiting(owner_id=obj.user_id)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Read-only: a workflow moves with its steps' finishes; cancel it by action."""

    list_display = ["id", "name", "owner", "status", "steps_done", "steps_total", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    actions = ["cancel_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected workflows (and their unfinished tasks)")
    def cancel_selected(self, request, queryset):
        cancelled = 0
        for workflow in queryset:
            try:
                workflows.workflow_cancel(workflow=workflow)
                cancelled += 1
            except WorkflowNotCancellable:
                pass
        messages.success(request, f"{cancelled} workflow(s) cancelled.")
