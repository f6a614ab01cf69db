"""A webhook delivery's page (its body as sent, every attempt) and its redelivery.

Deliveries to an endpoint and to a task's callback_url alike; another user's is a 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webhooks import selectors, services
from webhooks.models import DeliveryStatus, EndpointStatus, WebhookDelivery


def _delivery_or_404(request, delivery_id) -> WebhookDelivery:
    delivery = selectors.delivery_get_for_user(user=request.user, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No webhook delivery with this id.")
    return delivery


@login_required
@require_GET
def delivery_detail(request, delivery_id):
    delivery = _delivery_or_404(request, delivery_id)
    context = {
        "nav": "webhooks",
        "delivery": delivery,
        "attempts": list(delivery.attempt_log.all()),
    }
    return render(request, "dashboard/webhook_delivery.html", context)


@login_required
@require_POST
def delivery_redeliver(request, delivery_id):
    delivery = _delivery_or_404(request, delivery_id)
    if delivery.status == DeliveryStatus.PENDING:
        messages.info(request, "This delivery is already waiting for its next attempt.")
    else:
        delivery = services.delivery_redeliver(delivery=delivery)
        messages.success(
            request, "The delivery is queued to be sent again now, with a new schedule of attempts."
        )
    if delivery.endpoint is not None and delivery.endpoint.status != EndpointStatus.ENABLED:
        messages.warning(
            request, "Its endpoint is disabled: enable it, or the delivery fails without a try."
        )
    return redirect("dashboard:webhook-delivery", delivery_id=delivery.pk)
