"""The API of workflows: submit a chain or group of tasks, follow it, cancel it."""

import django_filters
from django.http import Http404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.pagination import NewestFirstPagination, filtered_page_response
from api.throttling import SubmitRateThrottle
from tasks_app import selectors, workflows
from tasks_app.models import Workflow, WorkflowStatus


class StepInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50, required=False)
    task_type = serializers.CharField(max_length=100)
    input = serializers.DictField(required=False, default=dict)
    input_from = serializers.DictField(
        child=serializers.CharField(max_length=300),
        required=False,
        default=dict,
        help_text="Input fields filled from earlier results: '<stage>.result', "
        "'<stage>.result.<key>' or, for a group, '<stage>.results'.",
    )
    priority = serializers.IntegerField(min_value=0, max_value=9, required=False)


class StageInputSerializer(serializers.Serializer):
    """A step, or a group of steps run at once: {"name", "group": [steps]}."""

    name = serializers.CharField(max_length=50, required=False)
    group = StepInputSerializer(many=True, required=False, allow_empty=False, max_length=100)
    task_type = serializers.CharField(max_length=100, required=False)
    input = serializers.DictField(required=False, default=dict)
    input_from = serializers.DictField(
        child=serializers.CharField(max_length=300), required=False, default=dict
    )
    priority = serializers.IntegerField(min_value=0, max_value=9, required=False)

    def validate(self, attrs):
        if ("group" in attrs) == ("task_type" in attrs):
            raise serializers.ValidationError("A stage has either a task_type or a group.")
        return attrs


@extend_schema_serializer(component_name="WorkflowSubmission")
class WorkflowInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    steps = StageInputSerializer(many=True, allow_empty=False, max_length=100)


@extend_schema_serializer(component_name="Workflow")
class WorkflowOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username")
    progress = serializers.DictField(child=serializers.IntegerField())
    steps = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "owner",
            "status",
            "progress",
            "current_stage",
            "failed_step",
            "error_message",
            "result",
            "created_at",
            "finished_at",
            "steps",
            "links",
        ]

    def get_steps(self, workflow) -> list[dict]:
        """Each stage's steps with their latest task (and every earlier try's id)."""
        request = self.context["request"]
        tasks: dict[str, list] = {}
        for record in selectors.workflow_step_records(workflow=workflow):
            tasks.setdefault(record.workflow_step, []).append(record)
        shown = []
        for index, stage in enumerate(workflow.stages):
            for step in stage["steps"]:
                records = tasks.get(step["name"], [])
                latest = records[-1] if records else None
                shown.append(
                    {
                        "stage": index,
                        "group": stage["name"] if stage["group"] else None,
                        "name": step["name"],
                        "task_type": step["task_type"],
                        "status": latest.status if latest else "not_started",
                        "task": None
                        if latest is None
                        else request.build_absolute_uri(reverse("task-detail", args=[latest.pk])),
                        "earlier_tasks": [str(record.pk) for record in records[:-1]],
                    }
                )
        return shown

    def get_links(self, workflow) -> dict:
        request = self.context["request"]
        return {
            "self": request.build_absolute_uri(reverse("workflow-detail", args=[workflow.pk])),
            "cancel": request.build_absolute_uri(reverse("workflow-cancel", args=[workflow.pk])),
        }


class WorkflowFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=WorkflowStatus.choices, distinct=False)

    class Meta:
        model = Workflow
        fields = ["status"]


def _render(request, workflow, code=status.HTTP_200_OK) -> Response:
    data = WorkflowOutputSerializer(workflow, context={"request": request}).data
    return Response(data, status=code)


def _workflow_or_404(request, workflow_id) -> Workflow:
    workflow = selectors.workflow_get_for_user(user=request.user, workflow_id=workflow_id)
    if workflow is None:
        raise Http404("No workflow with this id.")
    return workflow


class WorkflowCollectionApi(APIView):
    """GET lists your workflows, newest first (?status=). POST submits one: its first
    stage is queued at once, each next one when the one before has succeeded
    (docs/workflows.md)."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = WorkflowFilter
    pagination_class = NewestFirstPagination
    queryset = Workflow.objects.none()
    throttle_classes = [SubmitRateThrottle]
    throttle_scope = "task_submit"

    def get_throttles(self):
        # Only submits count against the submit rate.
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(responses={200: WorkflowOutputSerializer(many=True)})
    def get(self, request):
        return filtered_page_response(
            request=request,
            view=self,
            queryset=selectors.workflow_list_for_user(user=request.user),
            serializer_class=WorkflowOutputSerializer,
        )

    @extend_schema(request=WorkflowInputSerializer, responses={202: WorkflowOutputSerializer})
    def post(self, request):
        serializer = WorkflowInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workflow = workflows.workflow_submit(owner=request.user, **serializer.validated_data)
        response = _render(request, workflow, status.HTTP_202_ACCEPTED)
        response["Location"] = response.data["links"]["self"]
        return response


class WorkflowDetailApi(APIView):
    """A workflow: its status, steps done out of steps, each step's task, its result."""

    @extend_schema(responses={200: WorkflowOutputSerializer})
    def get(self, request, workflow_id):
        return _render(request, _workflow_or_404(request, workflow_id))


class WorkflowCancelApi(APIView):
    """Cancel the workflow and each of its tasks that has not finished (409 once it
    succeeded; cancelling twice is harmless)."""

    @extend_schema(request=None, responses={200: WorkflowOutputSerializer})
    def post(self, request, workflow_id):
        workflow = workflows.workflow_cancel(workflow=_workflow_or_404(request, workflow_id))
        return _render(request, workflow)
