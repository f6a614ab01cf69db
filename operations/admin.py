"""Read-only views of what the operations jobs recorded. Schedules are edited in
django-celery-beat's own admin ("Periodic tasks")."""

from django.contrib import admin

from operations.models import HealthSnapshot, MaintenanceLock, MaintenanceRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the jobs: staff look, nobody edits, adds or deletes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MaintenanceRun)
class MaintenanceRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "outcome", "started_at", "finished_at", "counts", "error"]
    list_filter = ["job", "outcome"]
    date_hierarchy = "started_at"


@admin.register(MaintenanceLock)
class MaintenanceLockAdmin(ReadOnlyAdmin):
    # A lock left by a killed run frees itself when held_until passes.
    list_display = ["job", "held_until", "holder"]


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "status", "notified_at"]
    list_filter = ["status"]
    date_hierarchy = "created_at"
