from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tasks_app.services import api_key_create


class Command(BaseCommand):
    help = "Create an X-API-Key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="A label to tell keys apart.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'.")
        _, raw_key = api_key_create(owner=user, name=name)
        self.stdout.write(raw_key)
