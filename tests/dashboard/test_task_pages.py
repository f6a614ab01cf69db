"""The dashboard's task pages, as a browser without JavaScript meets them: sign in, list,
filter, page, open, submit and cancel; others' tasks stay invisible."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.templatetags.dashboard import markdown
from tasks_app import events
from tasks_app.models import TaskRecord, TaskStatus
from tests.factories import TaskRecordFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_browser(other_user) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


def _text(response) -> str:
    return response.content.decode()


def test_pages_ask_to_sign_in_first():
    for path in ("/", "/tasks/", "/tasks/new/", f"/tasks/{TaskRecordFactory().pk}/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_signing_in_with_a_password_leads_to_the_tasks():
    UserFactory(username="alice")
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert '<label for="id_username">Username</label>' in _text(page)

    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200
    assert "didn't match" in _text(wrong)

    signed_in = client.post(
        "/accounts/login/", {"username": "alice", "password": "secret-password", "next": "/"}
    )
    assert signed_in.status_code == 302
    assert client.get("/tasks/").status_code == 200


def test_signing_out_takes_a_post_and_ends_the_session(browser):
    assert browser.post("/accounts/logout/").status_code == 302
    assert browser.get("/tasks/").status_code == 302


def test_the_list_shows_only_the_users_own_tasks(browser, user, other_user):
    mine = TaskRecordFactory(owner=user)
    theirs = TaskRecordFactory(owner=other_user)

    page = _text(browser.get("/tasks/"))

    assert str(mine.pk) in page
    assert str(theirs.pk) not in page


def test_another_users_task_is_a_404_to_see_cancel_or_download(browser, other_user):
    theirs = TaskRecordFactory(owner=other_user, status=TaskStatus.SUCCEEDED, result={"a": 1})

    assert browser.get(f"/tasks/{theirs.pk}/").status_code == 404
    assert browser.get(f"/tasks/{theirs.pk}/result.json").status_code == 404
    assert browser.post(f"/tasks/{theirs.pk}/cancel/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == TaskStatus.SUCCEEDED


def test_a_malformed_task_id_is_a_404(browser):
    assert browser.get("/tasks/not-a-uuid/").status_code == 404


def test_filters_by_status_and_type(browser, user):
    running = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING)
    failed = TaskRecordFactory(owner=user, status=TaskStatus.FAILED, task_type="diagnostics.fail")

    only_running = _text(browser.get("/tasks/?status=running"))
    assert str(running.pk) in only_running
    assert str(failed.pk) not in only_running

    only_fail_type = _text(browser.get("/tasks/?task_type=diagnostics.fail"))
    assert str(failed.pk) in only_fail_type
    assert str(running.pk) not in only_fail_type

    both = _text(browser.get("/tasks/?status=running&status=failed"))
    assert str(running.pk) in both and str(failed.pk) in both


def test_an_unknown_status_filter_is_a_400_that_says_why(browser):
    response = browser.get("/tasks/?status=exploded")

    assert response.status_code == 400
    assert "exploded is not one of the available choices" in _text(response)


def test_pages_of_the_list_follow_each_other_without_overlap(browser, user):
    start = timezone.now()
    records = [
        TaskRecordFactory(owner=user, created_at=start - timedelta(seconds=n)) for n in range(30)
    ]

    first = browser.get("/tasks/")
    first_ids = set(re.findall(r'id="task-([0-9a-f-]{36})"', _text(first)))
    older = re.search(r'href="([^"]+)" rel="next"', _text(first)).group(1).replace("&amp;", "&")
    second = browser.get(older)
    second_ids = set(re.findall(r'id="task-([0-9a-f-]{36})"', _text(second)))

    assert len(first_ids) == 25
    assert len(second_ids) == 5
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == {str(record.pk) for record in records}
    # The newest come first.
    assert str(records[0].pk) in first_ids


def test_a_rewritten_cursor_is_a_404_not_a_500(browser):
    assert browser.get("/tasks/?cursor=garbage").status_code == 404


def test_a_list_with_unfinished_tasks_follows_events_and_answers_htmx_with_its_rows_only(
    browser, user
):
    TaskRecordFactory(owner=user, status=TaskStatus.RUNNING, progress_current=3, progress_total=4)
    before = int(events.cursor_of(timezone.now()))

    page = _text(browser.get("/tasks/"))
    fragment = _text(browser.get("/tasks/", headers={"HX-Request": "true"}))

    # Refreshed when the owner's event stream says a task changed, the stream starting from
    # the moment the page was read.
    assert 'hx-trigger="task-changed from:body"' in page
    position = re.search(r'data-task-events="/api/v1/tasks/events\?last_event_id=(\d+)"', page)
    assert position and before <= int(position[1]) <= int(events.cursor_of(timezone.now()))
    assert fragment.lstrip().startswith('<div id="task-rows"')
    assert "<html" not in fragment
    assert '<progress id="progress-' in fragment and 'max="4" value="3"' in fragment


def test_staff_list_of_everyones_tasks_polls_each_second(client):
    staff = UserFactory(is_staff=True)
    TaskRecordFactory(status=TaskStatus.RUNNING)  # another user's: not in staff's own stream
    client.force_login(staff)

    page = _text(client.get("/tasks/"))

    assert 'hx-trigger="every 1s"' in page
    assert "data-task-events" not in page


def test_staff_page_of_another_users_task_polls_and_of_their_own_follows_events(client):
    staff = UserFactory(is_staff=True)
    theirs = TaskRecordFactory(status=TaskStatus.RUNNING)
    own = TaskRecordFactory(owner=staff, status=TaskStatus.QUEUED)
    client.force_login(staff)

    theirs_page = _text(client.get(f"/tasks/{theirs.pk}/"))
    own_page = _text(client.get(f"/tasks/{own.pk}/"))

    assert 'hx-trigger="every 1s"' in theirs_page and "data-task-events" not in theirs_page
    assert 'hx-trigger="task-changed from:body"' in own_page
    assert f'data-task-id="{own.pk}"' in own_page


def test_a_list_of_finished_tasks_does_not_poll(browser, user):
    TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED)

    assert "hx-trigger" not in _text(browser.get("/tasks/"))


def test_the_detail_shows_input_progress_attempts_and_result(browser, user):
    record = TaskRecordFactory(
        owner=user,
        status=TaskStatus.SUCCEEDED,
        input={"seconds": 2.0, "steps": 4},
        progress_current=4,
        progress_total=4,
        progress_message="step 4 of 4",
        attempts=2,
        worker="celery@host-a",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        result={"slept": 2.0},
        error_history=[
            {
                "attempt": 1,
                "error_type": "TransientTaskError",
                "error_message": "the disk was busy",
                "traceback": "Traceback …",
                "at": timezone.now().isoformat(),
                "retry_in": 2.5,
            }
        ],
    )

    page = _text(browser.get(f"/tasks/{record.pk}/"))

    assert "&quot;steps&quot;: 4" in page
    assert "step 4 of 4" in page
    assert "Attempt 1 failed" in page
    assert "TransientTaskError: the disk was busy; retried after 2.5 s" in page
    assert "Attempt 2 started on celery@host-a" in page
    assert "&quot;slept&quot;: 2.0" in page
    assert 'class="badge badge-succeeded">Succeeded' in page
    assert "hx-trigger" not in page  # finished: nothing left to watch


def test_the_timeline_puts_a_failed_attempt_before_the_next_start(browser, user):
    submitted = timezone.now() - timedelta(minutes=5)
    record = TaskRecordFactory(
        owner=user,
        status=TaskStatus.RUNNING,
        created_at=submitted,
        attempts=2,
        started_at=submitted + timedelta(seconds=30),
        error_history=[
            {
                "attempt": 1,
                "error_type": "TransientTaskError",
                "error_message": "busy",
                "at": (submitted + timedelta(seconds=10)).isoformat(),
                "retry_in": 2,
            }
        ],
    )

    page = _text(browser.get(f"/tasks/{record.pk}/"))

    assert (
        page.index("Submitted") < page.index("Attempt 1 failed") < page.index("Attempt 2 started")
    )


def test_the_traceback_is_for_staff_only(user, staff_user):
    record = TaskRecordFactory(
        owner=user,
        status=TaskStatus.FAILED,
        error_type="ValueError",
        error_message="bad input",
        error_traceback="Traceback (most recent call last): secret internals",
    )
    owner_client, staff_client = Client(), Client()
    owner_client.force_login(user)
    staff_client.force_login(staff_user)

    owners_page = _text(owner_client.get(f"/tasks/{record.pk}/"))
    staff_page = _text(staff_client.get(f"/tasks/{record.pk}/"))

    assert "bad input" in owners_page
    assert "secret internals" not in owners_page
    assert "secret internals" in staff_page


def test_the_result_downloads_as_a_json_file(browser, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED, result={"rows": [1, 2]})
    unfinished = TaskRecordFactory(owner=user, status=TaskStatus.RUNNING)

    response = browser.get(f"/tasks/{record.pk}/result.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    assert json.loads(response.content) == {"rows": [1, 2]}
    assert browser.get(f"/tasks/{unfinished.pk}/result.json").status_code == 404


def test_cancel_from_the_page_cancels_and_goes_back(browser, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)

    response = browser.post(f"/tasks/{record.pk}/cancel/", {"next": "/tasks/?status=queued"})

    assert response.status_code == 302
    assert response["Location"] == "/tasks/?status=queued"
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    assert "is cancelled" in _text(browser.get(response["Location"]))


def test_cancel_never_sends_the_browser_to_another_site(browser, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)

    response = browser.post(f"/tasks/{record.pk}/cancel/", {"next": "https://evil.example/"})

    assert response["Location"] == f"/tasks/{record.pk}/"


def test_cancelling_a_finished_task_says_so_and_changes_nothing(browser, user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.SUCCEEDED)

    response = browser.post(f"/tasks/{record.pk}/cancel/", follow=True)

    assert "has already succeeded" in _text(response)
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCEEDED


def test_forms_refuse_a_post_without_the_csrf_token(user):
    record = TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.post(f"/tasks/{record.pk}/cancel/").status_code == 403
    assert client.post("/tasks/new/diagnostics.sleep/", {"seconds": "1"}).status_code == 403
    record.refresh_from_db()
    assert record.status == TaskStatus.QUEUED
    assert TaskRecord.objects.count() == 1


def test_the_submit_page_lists_public_types_only(browser):
    page = _text(browser.get("/tasks/new/"))

    assert "/tasks/new/diagnostics.sleep/" in page
    assert "documents.process" not in page
    assert browser.get("/tasks/new/documents.process/").status_code == 404
    assert browser.get("/tasks/new/no.such.type/").status_code == 404


def test_task_type_descriptions_are_shown_as_markdown(browser):
    listing = _text(browser.get("/tasks/new/"))
    form = _text(browser.get("/tasks/new/diagnostics.overrun/"))

    # The docstring's `seconds` is code, and its two paragraphs are two, without the
    # docstring's indentation.
    assert "Run <code>seconds</code> under a 2 s soft" in form
    assert "`seconds`" not in form and "`seconds`" not in listing
    assert "</p>\n<p>The scratch file is removed" in form
    assert "Sleep for <code>seconds</code>, in <code>steps</code> equal steps" in listing


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "<script>alert(1)</script> `x`",
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; <code>x</code></p>",
        ),
        ("[a](javascript:alert(1))", "<p>[a](javascript:alert(1))</p>"),
        ("", ""),
    ],
)
def test_a_description_cannot_bring_its_own_html_or_script_links(text, shown):
    assert markdown(text).strip() == shown


def test_the_form_of_a_type_comes_from_its_input_serializer(browser):
    page = _text(browser.get("/tasks/new/diagnostics.sleep/"))

    seconds = re.search(r"<input id=\"field-seconds\"[^>]*>", page).group(0)
    steps = re.search(r"<input id=\"field-steps\"[^>]*>", page).group(0)
    assert 'type="number"' in seconds and 'step="any"' in seconds and "required" in seconds
    assert 'max="3600"' in seconds
    assert 'step="1"' in steps and 'value="10"' in steps and "required" not in steps
    assert '<label for="field-seconds">Seconds' in page
    assert "How long to sleep in total." in page
    assert 'name="idempotency_key"' in page

    overrun = _text(browser.get("/tasks/new/diagnostics.overrun/"))
    assert re.search(
        r'<input id="field-ignore_soft_limit" name="ignore_soft_limit" type="checkbox"', overrun
    )


def test_submitting_the_form_makes_the_task_and_shows_it(browser, user):
    response = browser.post(
        "/tasks/new/diagnostics.sleep/",
        {"seconds": "1.5", "steps": "3", "priority": "7", "idempotency_key": "form-1"},
    )

    assert response.status_code == 303
    record = TaskRecord.objects.get()
    assert response["Location"] == f"/tasks/{record.pk}/"
    assert record.owner == user
    assert record.input == {"seconds": 1.5, "steps": 3}
    assert record.priority == 7
    assert record.status == TaskStatus.QUEUED


def test_optional_fields_left_empty_take_the_types_defaults(browser):
    browser.post("/tasks/new/diagnostics.sleep/", {"seconds": "2", "steps": "", "priority": ""})

    record = TaskRecord.objects.get()
    assert record.input == {"seconds": 2.0, "steps": 10}
    assert record.priority == 5


def test_the_same_form_posted_twice_submits_once(browser):
    form = {"seconds": "1", "steps": "2", "idempotency_key": "double-click"}

    first = browser.post("/tasks/new/diagnostics.sleep/", form)
    second = browser.post("/tasks/new/diagnostics.sleep/", form)

    assert TaskRecord.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_invalid_input_is_shown_by_each_field_and_submits_nothing(browser):
    response = browser.post(
        "/tasks/new/diagnostics.sleep/", {"seconds": "soon", "steps": "0", "priority": "12"}
    )

    page = _text(response)
    assert response.status_code == 400
    assert "The task was not submitted" in page
    assert "Enter a number." in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Ensure this value is less than or equal to 9." in page
    # What was typed stays in the form.
    assert 'value="soon"' in page
    assert TaskRecord.objects.count() == 0


@pytest.mark.parametrize("seconds", ["NaN", "Infinity", "1e400"])
def test_numbers_that_are_not_finite_are_refused(browser, seconds):
    response = browser.post("/tasks/new/diagnostics.sleep/", {"seconds": seconds})

    assert response.status_code == 400
    assert TaskRecord.objects.count() == 0


def test_past_the_active_limit_the_form_says_so(browser, user, settings):
    settings.TASKS_MAX_ACTIVE_PER_USER = 1
    TaskRecordFactory(owner=user, status=TaskStatus.QUEUED)

    response = browser.post("/tasks/new/diagnostics.sleep/", {"seconds": "1"})

    assert response.status_code == 429
    assert "unfinished tasks" in _text(response)
    assert TaskRecord.objects.count() == 1


def test_pages_send_a_content_security_policy_without_inline_script(browser, user):
    record = TaskRecordFactory(owner=user)
    for path in (
        "/tasks/",
        f"/tasks/{record.pk}/",
        "/tasks/new/",
        "/tasks/new/diagnostics.sleep/",
        "/accounts/password_change/",
    ):
        response = browser.get(path)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        scripts = re.findall(r"<script\b[^>]*>", _text(response))
        assert scripts and all("src=" in tag for tag in scripts), (path, scripts)
        # No inline styles or event handlers either: the policy would refuse them.
        assert " style=" not in _text(response), path
        assert not re.search(r"<[^>]+\son[a-z]+=", _text(response)), path


def test_the_anonymous_login_page_has_the_policy_too():
    response = Client().get("/accounts/login/")

    assert "script-src 'self'" in response["Content-Security-Policy"]
