"""Template context every page may use."""

from django.conf import settings


def support(request) -> dict[str, str]:
    """Where people write to the platform's staff (THISDB_SUPPORT_EMAIL)."""
    return {"support_email": settings.THISDB_SUPPORT_EMAIL}
