"""The API of webhooks: a user's endpoints (with their secrets), the delivery log and
redelivery, and the secret that signs their tasks' callbacks."""

import django_filters
from django.http import Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import NewestFirstPagination, filtered_page_response
from webhooks import selectors, services
from webhooks.models import (
    DeliveryStatus,
    EndpointStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


@extend_schema_serializer(component_name="WebhookEndpoint")
class EndpointOutputSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "status",
            "disabled_reason",
            "failing_since",
            "created_at",
            "links",
        ]

    def get_links(self, endpoint) -> dict:
        request = self.context["request"]
        return {
            name: request.build_absolute_uri(
                reverse(f"webhook-endpoint-{name}", args=[endpoint.pk])
            )
            for name in ("detail", "deliveries", "rotate-secret")
        }


@extend_schema_serializer(component_name="WebhookEndpointWithSecret")
class EndpointWithSecretSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="Signs every delivery (Standard Webhooks, whsec_…). Shown when the endpoint "
        "is created and when its secret is rotated, and never again."
    )

    class Meta(EndpointOutputSerializer.Meta):
        fields = [*EndpointOutputSerializer.Meta.fields, "secret"]


class EndpointInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    description = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        default=list,
        max_length=len(EventType.choices),
        help_text="The events to send; empty or absent: every type.",
    )


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        max_length=len(EventType.choices),
    )
    enabled = serializers.BooleanField(
        required=False,
        help_text="false disables it; true enables it again and forgets its failures.",
    )


@extend_schema_serializer(component_name="WebhookAttempt")
class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "attempted_at", "status_code", "duration_ms", "error", "response_body"]


@extend_schema_serializer(component_name="WebhookDelivery")
class DeliveryOutputSerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.id", help_text="Its webhook-id header.")
    event_type = serializers.CharField(source="event.event_type")
    task_id = serializers.UUIDField(
        source="event.task_id",
        allow_null=True,
        help_text="The task of a task.* or document.* event.",
    )
    workflow_id = serializers.UUIDField(
        source="event.workflow_id", allow_null=True, help_text="The workflow of a workflow.* event."
    )
    endpoint = serializers.UUIDField(source="endpoint_id", allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "task_id",
            "workflow_id",
            "endpoint",
            "url",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "finished_at",
            "links",
        ]

    def get_links(self, delivery) -> dict:
        request = self.context["request"]
        return {
            name: request.build_absolute_uri(
                reverse(f"webhook-delivery-{name}", args=[delivery.pk])
            )
            for name in ("detail", "redeliver")
        }


@extend_schema_serializer(component_name="WebhookDeliveryDetail")
class DeliveryDetailSerializer(DeliveryOutputSerializer):
    payload = serializers.CharField(source="event.payload", help_text="The body, as sent.")
    attempt_log = AttemptSerializer(many=True)

    class Meta(DeliveryOutputSerializer.Meta):
        fields = [*DeliveryOutputSerializer.Meta.fields, "payload", "attempt_log"]


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices, distinct=False)

    class Meta:
        model = WebhookDelivery
        fields = ["status"]


class EndpointFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=EndpointStatus.choices, distinct=False)

    class Meta:
        model = WebhookEndpoint
        fields = ["status"]


def _endpoint_or_404(request, endpoint_id) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get_for_user(user=request.user, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No webhook endpoint with this id.")
    return endpoint


def _delivery_or_404(request, delivery_id) -> WebhookDelivery:
    delivery = selectors.delivery_get_for_user(user=request.user, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No webhook delivery with this id.")
    return delivery


class EndpointCollectionApi(APIView):
    """GET lists your webhook endpoints; POST registers one (its secret is in the answer)."""

    # Named as DRF's generic views name them, so that the schema documents the filters
    # and pages; rows come from the selectors.
    filter_backends = [DjangoFilterBackend]
    filterset_class = EndpointFilter
    pagination_class = NewestFirstPagination
    queryset = WebhookEndpoint.objects.none()

    @extend_schema(responses={200: EndpointOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.endpoint_list_for_user(user=request.user),
            serializer_class=EndpointOutputSerializer,
        )

    @extend_schema(request=EndpointInputSerializer, responses={201: EndpointWithSecretSerializer})
    def post(self, request):
        serializer = EndpointInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(owner=request.user, **serializer.validated_data)
        data = EndpointWithSecretSerializer(endpoint, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    """GET shows an endpoint; PATCH changes it (or disables or enables it); DELETE removes
    it with its delivery log."""

    @extend_schema(responses={200: EndpointOutputSerializer})
    def get(self, request, endpoint_id):
        endpoint = _endpoint_or_404(request, endpoint_id)
        return Response(EndpointOutputSerializer(endpoint, context={"request": request}).data)

    @extend_schema(request=EndpointUpdateSerializer, responses={200: EndpointOutputSerializer})
    def patch(self, request, endpoint_id):
        endpoint = _endpoint_or_404(request, endpoint_id)
        serializer = EndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, **serializer.validated_data)
        return Response(EndpointOutputSerializer(endpoint, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, endpoint_id):
        services.endpoint_delete(endpoint=_endpoint_or_404(request, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretApi(APIView):
    """A new secret for the endpoint. The old one goes on signing too (a second signature
    in webhook-signature) for WEBHOOKS_SECRET_ROTATION_SECONDS, while receivers switch."""

    @extend_schema(request=None, responses={200: EndpointWithSecretSerializer})
    def post(self, request, endpoint_id):
        endpoint = services.secret_rotate(holder=_endpoint_or_404(request, endpoint_id))
        return Response(EndpointWithSecretSerializer(endpoint, context={"request": request}).data)


class EndpointDeliveriesApi(APIView):
    """The endpoint's delivery log, newest first; ?status=pending|succeeded|failed."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = DeliveryFilter
    pagination_class = NewestFirstPagination
    queryset = WebhookDelivery.objects.none()

    @extend_schema(responses={200: DeliveryOutputSerializer(many=True)})
    def get(self, request, endpoint_id):
        endpoint = _endpoint_or_404(request, endpoint_id)
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.delivery_list_for_endpoint(endpoint=endpoint),
            serializer_class=DeliveryOutputSerializer,
        )


class DeliveryListApi(APIView):
    """All your deliveries (to endpoints and task callbacks), newest first; ?status=."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = DeliveryFilter
    pagination_class = NewestFirstPagination
    queryset = WebhookDelivery.objects.none()

    @extend_schema(responses={200: DeliveryOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.delivery_list_for_user(user=request.user),
            serializer_class=DeliveryOutputSerializer,
        )


class DeliveryDetailApi(APIView):
    """A delivery with its body and every attempt: status code, time taken, error."""

    @extend_schema(responses={200: DeliveryDetailSerializer})
    def get(self, request, delivery_id):
        delivery = _delivery_or_404(request, delivery_id)
        return Response(DeliveryDetailSerializer(delivery, context={"request": request}).data)


class DeliveryRedeliverApi(APIView):
    """Send a delivery again now, with a new schedule of attempts and the same webhook-id."""

    @extend_schema(request=None, responses={202: DeliveryOutputSerializer})
    def post(self, request, delivery_id):
        delivery = services.delivery_redeliver(delivery=_delivery_or_404(request, delivery_id))
        data = DeliveryOutputSerializer(delivery, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


@extend_schema_serializer(component_name="WebhookCallbackSecret")
class CallbackSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Signs the callbacks of your tasks (callback_url).")
    previous_secret_expires_at = serializers.DateTimeField(allow_null=True)


class CallbackSecretApi(APIView):
    """GET shows the secret that signs your tasks' callbacks (made on first use); POST
    rotates it (the old one signs too for WEBHOOKS_SECRET_ROTATION_SECONDS)."""

    @extend_schema(responses={200: CallbackSecretSerializer})
    def get(self, request):
        return Response(
            CallbackSecretSerializer(services.callback_secret_for(owner=request.user)).data
        )

    @extend_schema(request=None, responses={200: CallbackSecretSerializer})
    def post(self, request):
        holder = services.secret_rotate(holder=services.callback_secret_for(owner=request.user))
        return Response(CallbackSecretSerializer(holder).data)
