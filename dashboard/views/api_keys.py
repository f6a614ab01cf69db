"""A person's own API keys, for their scripts: create one (its secret is shown once, on
the answer to the form) and revoke one. Staff manage everyone's in the admin."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api.errors import DomainError
from tasks_app import selectors, services
from tasks_app.models import ApiKey

KEYS_SHOWN = 200


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="What the key is for, such as the script or machine that uses it.",
    )


@never_cache  # the answer to a create holds the secret: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def api_key_list(request):
    form = ApiKeyForm(request.POST or None)
    created_key, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                api_key, raw_key = services.api_key_create(
                    owner=request.user, name=form.cleaned_data["name"]
                )
            except DomainError as error:
                form.add_error(None, str(error))
                status = error.http_status
            else:
                # Shown on this answer only: a reload or the list later shows its prefix.
                created_key = {"record": api_key, "secret": raw_key}
                form = ApiKeyForm()
                status = 201
        else:
            status = 400
    context = {
        "nav": "keys",
        "form": form,
        "created_key": created_key,
        # Unrevoked keys are bounded (the setting API_KEYS_MAX_PER_USER); revoked ones are
        # not, so the page shows the newest of all.
        "api_keys": selectors.api_key_list_for_user(user=request.user)[:KEYS_SHOWN],
    }
    return render(request, "dashboard/api_keys.html", context, status=status)


@login_required
@require_POST
def api_key_revoke(request, api_key_id):
    api_key = selectors.api_key_get_for_user(user=request.user, api_key_id=api_key_id)
    if api_key is None:
        raise Http404("No API key with this id.")
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"The key “{api_key.name}” ({api_key.prefix}…) is revoked.")
    return redirect("dashboard:api-keys")
