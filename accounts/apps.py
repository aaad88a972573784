from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Plans, API keys and usage"

    def ready(self):
        from accounts import signals  # noqa: F401  (connects the receivers)
