"""Staff's system page: health with its reasons and numbers, the queues (depth, the oldest
waiting task), the workers, running tasks, open dead letters (requeue, discard) and charts
of the last 24 hours from the health snapshots. Everyone else gets a 404, as for the
admin's data: the page does not say it exists."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from api.errors import DomainError
from dashboard.charts import line_chart, series_class
from dashboard.views.pages import back_or
from operations import health, history
from operations.broker_census import broker_census
from tasks_app import dead_letters, selectors

RUNNING_SHOWN = 50
DEAD_LETTERS_SHOWN = 50


def _staff_or_404(request) -> None:
    if not request.user.is_staff:
        raise Http404("No such page.")


@login_required
@require_GET
def system(request):
    _staff_or_404(request)
    now = timezone.now()
    queues = list(settings.TASKS_QUEUES)
    facts = broker_census(queues=queues)
    report = health.health_evaluate(now=now, facts=facts)
    oldest = selectors.oldest_queued_at(queues=queues)
    open_letters = selectors.dead_letters_open()
    day = history.day_series(now=now)
    context = {
        "nav": "system",
        "report": report,
        "broker_error": facts.error,
        "queues": [
            {
                "name": queue,
                "depth": facts.queue_sizes.get(queue),
                "oldest_queued_at": oldest[queue],
                "workers": None if facts.workers is None else facts.workers.get(queue, []),
            }
            for queue in queues
        ],
        "running": selectors.tasks_running(limit=RUNNING_SHOWN),
        "dead_letters": list(open_letters[:DEAD_LETTERS_SHOWN]),
        "dead_letters_open": open_letters.count(),
        "charts": [
            {
                "chart": chart,
                "svg": line_chart(chart, day.starts, chart_id=f"chart-{number}"),
                "legend": [
                    (series.name, series_class(index)) for index, series in enumerate(chart.series)
                ],
            }
            for number, chart in enumerate(day.charts)
        ],
    }
    return render(request, "dashboard/system.html", context)


@login_required
@require_POST
def dead_letter_resolve(request, dead_letter_id, action: str):
    """Requeue or discard one dead letter, then back to the page it was done on."""
    _staff_or_404(request)
    dead_letter = selectors.dead_letter_get(dead_letter_id=dead_letter_id)
    if dead_letter is None:
        raise Http404("No dead letter with this id.")
    try:
        if action == "requeue":
            dead_letter = dead_letters.dead_letter_requeue(dead_letter=dead_letter, by=request.user)
            said = f"Task {dead_letter.task_id} is requeued as {dead_letter.requeued_task_id}."
            messages.success(request, said)
        else:
            dead_letters.dead_letter_discard(dead_letter=dead_letter, by=request.user)
            said = f"The dead letter of task {dead_letter.task_id} is discarded."
            messages.success(request, said)
    except DomainError as error:
        messages.error(request, str(error))
    return redirect(back_or(request, reverse("dashboard:system")))
