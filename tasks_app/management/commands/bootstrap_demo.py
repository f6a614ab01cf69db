from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (once) a demo staff user and print its API token. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo", help="Only used when creating the user.")

    def handle(self, *args, username, password, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        token, _ = Token.objects.get_or_create(user=user)
        state = "created" if created else "exists"
        self.stdout.write(
            f"Demo user '{username}' ({state}); admin password '{password}' if created here."
        )
        self.stdout.write(f"API token: {token.key}")
