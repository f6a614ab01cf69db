import factory
from django.contrib.auth import get_user_model

from tasks_app.models import TaskRecord


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("secret-password")


class TaskRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskRecord

    owner = factory.SubFactory(UserFactory)
    task_type = "diagnostics.sleep"
    queue = "long"
    priority = 5
    input = factory.LazyFunction(lambda: {"seconds": 1.0, "steps": 2})
