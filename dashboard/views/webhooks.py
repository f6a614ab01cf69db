"""The webhooks pages: a person's endpoints (add one, enable or disable it, delete it,
rotate its secret), an endpoint's settings and delivery log, and the secret that signs
their tasks' callbacks.

An endpoint's secret is shown on the answer that made it only (after a create or a
rotate), as the API keys page shows a new key: that answer is the Webhooks page, which is
never cached, since it also holds the callback secret. Reads go through webhooks'
selectors (another user's ids are a 404, as in the API) and writes through its services;
a service's refusal (an address it will not send to, the limit of endpoints) is shown on
the form or as a message.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api.errors import DomainError
from dashboard.views.pages import back_or, cursor_page
from webhooks import selectors, services
from webhooks.models import EndpointStatus, EventType, WebhookEndpoint

# The page lists this many of the latest deliveries to the user's tasks' callbacks.
LATEST_CALLBACKS = 10


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=WebhookEndpoint._meta.get_field("url").max_length,
        help_text="Where the events are posted: an https:// or http:// address on the "
        "internet (not a private or local one).",
    )
    description = forms.CharField(
        max_length=WebhookEndpoint._meta.get_field("description").max_length,
        required=False,
        help_text="What receives them, for you to recognise it later.",
    )
    event_types = forms.MultipleChoiceField(
        choices=EventType.choices,
        required=False,
        help_text="Choose none to receive every event.",
    )


def _endpoint_or_404(request, endpoint_id) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get_for_user(user=request.user, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No webhook endpoint with this id.")
    return endpoint


@never_cache  # holds the callback secret, and a new endpoint's secret after a create
@login_required
@require_http_methods(["GET", "POST"])
def webhook_list(request):
    form = EndpointForm(request.POST or None)
    if request.method == "GET":
        return _webhooks_page(request, form)
    if not form.is_valid():
        return _webhooks_page(request, form, status=400)
    try:
        endpoint = services.endpoint_create(owner=request.user, **form.cleaned_data)
    except DomainError as error:
        # WebhookUrlNotAllowed names its field (url); the limit of endpoints is the form's.
        form.add_error(error.field if error.field in form.fields else None, str(error))
        return _webhooks_page(request, form, status=error.http_status)
    return _webhooks_page(request, EndpointForm(), new_secret=endpoint, status=201)


@never_cache  # the answer holds the new secret
@login_required
@require_POST
def endpoint_rotate_secret(request, endpoint_id):
    endpoint = services.secret_rotate(holder=_endpoint_or_404(request, endpoint_id))
    return _webhooks_page(request, EndpointForm(), new_secret=endpoint, rotated=True)


def _webhooks_page(
    request, form, *, new_secret: WebhookEndpoint | None = None, rotated=False, status=200
):
    context = {
        "nav": "webhooks",
        "form": form,
        # Shown on this answer only: a reload or the list later never shows it again.
        "new_secret": new_secret,
        "rotated": rotated,
        # At most WEBHOOKS_MAX_ENDPOINTS_PER_USER: one page holds them all.
        "endpoints": selectors.endpoint_list_for_user(user=request.user),
        "callback_secret": services.callback_secret_for(owner=request.user),
        "callbacks": selectors.callback_deliveries_for_user(
            user=request.user, limit=LATEST_CALLBACKS
        ),
    }
    return render(request, "dashboard/webhooks.html", context, status=status)


@login_required
@require_GET
def endpoint_detail(request, endpoint_id):
    endpoint = _endpoint_or_404(request, endpoint_id)
    deliveries, links = cursor_page(
        request, selectors.delivery_list_for_endpoint(endpoint=endpoint)
    )
    context = {"nav": "webhooks", "endpoint": endpoint, "deliveries": deliveries, **links}
    return render(request, "dashboard/webhook_endpoint.html", context)


@login_required
@require_POST
def endpoint_set_enabled(request, endpoint_id, enabled: bool):
    endpoint = services.endpoint_update(
        endpoint=_endpoint_or_404(request, endpoint_id), enabled=enabled
    )
    if endpoint.status == EndpointStatus.ENABLED:
        messages.success(request, f"{endpoint.url} is enabled: events are sent to it.")
    else:
        messages.success(
            request, f"{endpoint.url} is disabled: nothing is sent to it until you enable it."
        )
    return redirect(back_or(request, reverse("dashboard:webhook-endpoint", args=[endpoint.pk])))


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_delete(request, endpoint_id):
    """GET asks to confirm; POST deletes."""
    endpoint = _endpoint_or_404(request, endpoint_id)
    if request.method == "GET":
        context = {"nav": "webhooks", "endpoint": endpoint}
        return render(request, "dashboard/webhook_endpoint_delete.html", context)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"{endpoint.url} is deleted, with its delivery log.")
    return redirect("dashboard:webhooks")


@login_required
@require_POST
def callback_secret_rotate(request):
    services.secret_rotate(holder=services.callback_secret_for(owner=request.user))
    messages.success(
        request,
        "Your callback secret is rotated: the previous one signs callbacks too for a while "
        "(see below), while your receivers switch to the new one.",
    )
    return redirect(reverse("dashboard:webhooks") + "#callback-heading")
