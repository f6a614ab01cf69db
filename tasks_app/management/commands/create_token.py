from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tasks_app.tokens import user_token_issue


class Command(BaseCommand):
    help = (
        "Issue an 'Authorization: Token' token for a user and print it (it is shown only this "
        "once). The user's other tokens keep working."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'.")
        _, raw_key = user_token_issue(user=user)
        self.stdout.write(raw_key)
