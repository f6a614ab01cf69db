from django.core.management.base import BaseCommand

from operations.schedules import schedules_install, schedules_installed


class Command(BaseCommand):
    help = (
        "Create the periodic tasks that beat runs (maintenance, health). Existing ones are "
        "kept as they are, admin edits included, unless --reset is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Also restore existing periodic tasks to their definition (undoes admin edits).",
        )

    def handle(self, *args, reset, verbosity, **options):
        counts = schedules_install(reset=reset)
        if verbosity < 1:
            return
        self.stdout.write(
            f"Schedules: {counts['created']} created, {counts['updated']} reset, "
            f"{counts['kept']} kept as they were."
        )
        for task in schedules_installed().order_by("name"):
            state = "" if task.enabled else "  (disabled)"
            self.stdout.write(f"  {task.name:<34} {task.scheduler}  → {task.task}{state}")
