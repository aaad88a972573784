from django.db import migrations


def create_free_plan(apps, schema_editor):
    Plan = apps.get_model("accounts", "Plan")
    Account = apps.get_model("accounts", "Account")
    User = apps.get_model("auth", "User")
    # Blank figures: the free plan follows the platform defaults of settings.
    free, _ = Plan.objects.get_or_create(name="free", defaults={"is_default": True})
    for user in User.objects.filter(account__isnull=True):
        Account.objects.create(user=user, plan=free)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_free_plan, migrations.RunPython.noop)]
