"""Staff's view of webhooks: endpoints (registered for a user, checked like the API's;
disable, enable, and the secret never shown), and the delivery log with redelivery."""

from django import forms
from django.contrib import admin, messages

from api.errors import DomainError
from webhooks import services
from webhooks.models import (
    EndpointStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


class EndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["owner", "url", "description", "event_types"]

    def clean_url(self):
        try:
            return services.webhook_url_check(self.cleaned_data["url"])
        except DomainError as error:
            raise forms.ValidationError(str(error)) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "owner", "status", "event_types", "failing_since", "created_at"]
    list_filter = ["status"]
    search_fields = ["url", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = ["status", "disabled_reason", "failing_since", "created_at"]
    actions = ["disable_selected", "enable_selected"]

    def get_readonly_fields(self, request, obj=None):
        # The owner is chosen when the endpoint is made, not moved to someone else later.
        return [*self.readonly_fields, "owner"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.endpoint_update(
                endpoint=obj,
                url=data["url"],
                description=data["description"],
                event_types=data["event_types"],
            )
            return
        try:
            created = services.endpoint_create(
                owner=data["owner"],
                url=data["url"],
                description=data["description"],
                event_types=data["event_types"],
            )
        except DomainError as error:
            messages.error(request, str(error))
            return
        obj.pk = created.pk
        messages.info(
            request, "The endpoint's owner sees its secret by rotating it (API or dashboard)."
        )

    @admin.action(description="Disable the selected endpoints")
    def disable_selected(self, request, queryset):
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Enable the selected endpoints")
    def enable_selected(self, request, queryset):
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(self, request, queryset, *, enabled: bool):
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, enabled=enabled)
        status = EndpointStatus.ENABLED if enabled else EndpointStatus.DISABLED
        messages.success(request, f"{queryset.count()} endpoint(s) now {status.label.lower()}.")


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["number", "attempted_at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only: deliveries change through the sender and the redeliver action."""

    list_display = ["event", "url", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event__event_type"]
    search_fields = ["event__id", "url", "event__owner__username"]
    list_select_related = ["event"]
    inlines = [AttemptInline]
    actions = ["redeliver_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver the selected deliveries now")
    def redeliver_selected(self, request, queryset):
        for delivery in queryset:
            services.delivery_redeliver(delivery=delivery)
        messages.success(request, f"{queryset.count()} delivery(ies) will be sent again.")
