from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tasks_app.tokens import user_token_replace, user_tokens_revoke

DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = (
        "Development only (DJANGO_DEBUG=true): create the demo superuser once, issue it a "
        "fresh API token and print it. Otherwise create nothing, disable the demo user's "
        "known password if an earlier run left it, and say how to make your own user."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username, **options):
        if settings.DEBUG:
            self._bootstrap(username)
        else:
            self._refuse(username)

    def _bootstrap(self, username: str) -> None:
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
            self.stdout.write(
                f"Demo user '{username}' created, password '{DEMO_PASSWORD}' "
                "(development only: DJANGO_DEBUG is on)."
            )
        else:
            self.stdout.write(f"Demo user '{username}' exists; its password is unchanged.")
        # Only digests are stored, so an earlier token cannot be printed again: each run
        # issues a new one, and the old ones are revoked rather than left to pile up.
        _, raw_key = user_token_replace(user=user)
        self.stdout.write(f"API token: {raw_key}")
        self.stdout.write("(a new token at each run; the previous demo token no longer works)")

    def _refuse(self, username: str) -> None:
        # Deployments before this change created demo/demo with DEBUG off too, and printed
        # its token in their logs: take both away.
        user = get_user_model().objects.filter(username=username).first()
        if user is not None and user.check_password(DEMO_PASSWORD):
            user.set_unusable_password()
            user.save(update_fields=["password"])
            revoked = user_tokens_revoke(user=user)
            self.stdout.write(
                f"Disabled the known password of user '{username}' and revoked its "
                f"{revoked} token(s). Give it a password with: manage.py changepassword {username}"
            )
        self.stdout.write(
            "No demo user: DJANGO_DEBUG is off. Create your own admin user, then a token for it:\n"
            "    .venv/bin/python manage.py createsuperuser\n"
            "    .venv/bin/python manage.py create_token USERNAME"
        )
