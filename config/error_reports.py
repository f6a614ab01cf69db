"""What Django's error reports (the DEBUG error page, the mails to ADMINS) may show.

Django hides settings whose names look secret (``PASSWORD``, ``SECRET_KEY``, ...), but a
password inside a URL, as in ``CELERY_BROKER_URL`` or ``DATABASE_URL``, shows in full,
and so does a webhook URL whose path is its secret.
"""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:PASSWORD@host: the password runs to the last "@" before the path, as
# urllib.parse reads it, so an unescaped "@" in a password is hidden too.
URL_PASSWORD = re.compile(r"(?P<before>\b[a-z][a-z0-9+.\-]*://[^:@/\s?#]*:)[^/\s?#]*(?=@)", re.I)


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding webhook and DSN settings and passwords in URLs."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|WEBHOOK|DSN", flags=re.I
    )

    def cleanse_setting(self, key, value):
        # Django recurses into dicts, lists and tuples through this method, so every
        # string nested in a setting (DATABASES, CACHES' LOCATION) passes here.
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            # str(): a lazy object that stands for a string passes isinstance but not re
            # (django-axes' AXES_USERNAME_FORM_FIELD).
            return self.cleanse_urls(str(value))
        return value

    def cleanse_urls(self, text: str) -> str:
        return URL_PASSWORD.sub(rf"\g<before>{self.cleansed_substitute}", text)

    def get_traceback_frame_variables(self, request, tb_frame):
        # A traceback through a connection attempt has the URL in a local variable.
        return [
            (name, self.cleanse_urls(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
