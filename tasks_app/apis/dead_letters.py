"""Staff API of dead letters: list and inspect them, requeue or discard one or many."""

import django_filters
from django.http import Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import NewestFirstPagination, filtered_page_response
from api.schema import ErrorSerializer
from tasks_app import dead_letters, selectors
from tasks_app.models import DeadLetter

ALREADY_RESOLVED = OpenApiResponse(
    ErrorSerializer,
    description="Already requeued or discarded (its status is in the body), or of a task "
    "type that is not requeued from here.",
)


@extend_schema_serializer(component_name="DeadLetter")
class DeadLetterOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username")
    task = serializers.SerializerMethodField()
    requeued_task = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "task",
            "task_type",
            "owner",
            "input",
            "final_status",
            "error_type",
            "error_message",
            "attempts",
            "task_created_at",
            "created_at",
            "resolution",
            "resolved_at",
            "requeued_task",
            "links",
        ]

    def _task_link(self, task_id) -> dict | None:
        if task_id is None:
            return None
        url = reverse("task-detail", args=[task_id])
        return {"id": str(task_id), "url": self.context["request"].build_absolute_uri(url)}

    def get_task(self, dead_letter) -> dict | None:
        return self._task_link(dead_letter.task_id)

    def get_requeued_task(self, dead_letter) -> dict | None:
        return self._task_link(dead_letter.requeued_task_id)

    def get_links(self, dead_letter) -> dict:
        request = self.context["request"]
        return {
            name: request.build_absolute_uri(reverse(f"dead-letter-{name}", args=[dead_letter.pk]))
            for name in ("detail", "requeue", "discard")
        }


class DeadLetterFilter(django_filters.FilterSet):
    # distinct=False: one resolution per row, so ``IN (…)`` repeats none; DISTINCT would
    # sort every match on all its columns before the page.
    resolution = django_filters.MultipleChoiceFilter(
        choices=DeadLetter.Resolution.choices, distinct=False
    )
    task_type = django_filters.CharFilter()
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = DeadLetter
        fields = ["resolution", "task_type", "owner"]


class UUIDStringField(serializers.UUIDField):
    """A UUID written as a string. DRF's own also takes a number (even ``false``) as the
    UUID's integer value, which no client means."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


def _render(request, dead_letter) -> Response:
    return Response(DeadLetterOutputSerializer(dead_letter, context={"request": request}).data)


def _dead_letter_or_404(dead_letter_id) -> DeadLetter:
    dead_letter = selectors.dead_letter_get(dead_letter_id=dead_letter_id)
    if dead_letter is None:
        raise Http404("No dead letter with this id.")
    return dead_letter


class DeadLetterListApi(APIView):
    """Dead letters, newest first; ?resolution=open|requeued|discarded, ?task_type=, ?owner=."""

    permission_classes = [IsAdminUser]
    # Named as DRF's generic views name them, so that the schema documents the filters and
    # pages; the queryset only tells it the model (rows come from the selector).
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeadLetterFilter
    pagination_class = NewestFirstPagination
    queryset = DeadLetter.objects.none()

    @extend_schema(responses={200: DeadLetterOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.dead_letter_list(),
            serializer_class=DeadLetterOutputSerializer,
        )


class DeadLetterDetailApi(APIView):
    """GET shows one dead letter, with every attempt's error and traceback."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: DeadLetterOutputSerializer})
    def get(self, request, dead_letter_id):
        return _render(request, _dead_letter_or_404(dead_letter_id))


class _DeadLetterActionApi(APIView):
    """POST applies ``resolve`` (a dead-letter service) to one dead letter."""

    permission_classes = [IsAdminUser]
    resolve = None

    @extend_schema(request=None, responses={200: DeadLetterOutputSerializer, 409: ALREADY_RESOLVED})
    def post(self, request, dead_letter_id):
        dead_letter = type(self).resolve(
            dead_letter=_dead_letter_or_404(dead_letter_id), by=request.user
        )
        return _render(request, dead_letter)


class DeadLetterRequeueApi(_DeadLetterActionApi):
    """Run the task again, as a new task linked to the dead one."""

    resolve = dead_letters.dead_letter_requeue


class DeadLetterDiscardApi(_DeadLetterActionApi):
    """Close a dead letter without running the task again."""

    resolve = dead_letters.dead_letter_discard


class DeadLetterBulkApi(APIView):
    """Requeue or discard many at once: {"action": "requeue"|"discard", "ids": [...]}.

    Answers what happened to each id, since some may already be resolved or unknown.
    """

    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="DeadLetterBulkAction")
    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["requeue", "discard"])
        ids = serializers.ListField(
            child=UUIDStringField(), min_length=1, max_length=500, allow_empty=False
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "DeadLetterBulkResult",
                {
                    "results": serializers.DictField(
                        child=serializers.CharField(),
                        help_text="Per id: requeued, discarded, not found, already requeued, "
                        "already discarded, or why it cannot be requeued.",
                    )
                },
            )
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcomes = dead_letters.dead_letters_resolve(
            action=serializer.validated_data["action"],
            ids=serializer.validated_data["ids"],
            by=request.user,
        )
        return Response({"results": outcomes})
