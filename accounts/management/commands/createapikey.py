from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey, TooManyApiKeys


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (its last line is the key, shown once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument(
            "--create-user", action="store_true", help="create the user if it does not exist"
        )

    def handle(self, username, name, create_user, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            if not create_user:
                raise CommandError(
                    f"no user named {username!r}: sign up first, or pass --create-user"
                ) from None
            user = User.objects.create_user(username=username)
        try:
            _, secret = ApiKey.objects.create_key(user, name=name)
        except TooManyApiKeys as exc:
            raise CommandError(
                f"{username} has {exc.allowed} live API keys, the most the plan allows: revoke "
                "one (on /keys/ or in the staff console's API keys), or raise the account's "
                "max API keys in the staff console, then try again"
            ) from None
        self.stderr.write(f"API key for {username} (store it now: it is not shown again):")
        self.stdout.write(secret)
