from django.urls import path

from webhooks import apis

urlpatterns = [
    path("webhooks/endpoints/", apis.EndpointCollectionApi.as_view(), name="webhook-endpoint-list"),
    path(
        "webhooks/endpoints/<str:endpoint_id>/",
        apis.EndpointDetailApi.as_view(),
        name="webhook-endpoint-detail",
    ),
    path(
        "webhooks/endpoints/<str:endpoint_id>/rotate-secret/",
        apis.EndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhooks/endpoints/<str:endpoint_id>/deliveries/",
        apis.EndpointDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path("webhooks/deliveries/", apis.DeliveryListApi.as_view(), name="webhook-delivery-list"),
    path(
        "webhooks/deliveries/<str:delivery_id>/",
        apis.DeliveryDetailApi.as_view(),
        name="webhook-delivery-detail",
    ),
    path(
        "webhooks/deliveries/<str:delivery_id>/redeliver/",
        apis.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
    path(
        "webhooks/callback-secret/",
        apis.CallbackSecretApi.as_view(),
        name="webhook-callback-secret",
    ),
]
