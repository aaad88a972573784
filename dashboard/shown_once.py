"""A new token, shown once on the page the creating POST redirects to.

The POST answers 303 so that a reload repeats the GET, never the POST (a second token). The token
waits in the session (SESSION_ENGINE keeps it server-side, in the database: the browser holds
only the session id; a system check refuses a cookie-based engine, dashboard.checks) and is
popped when its page is shown, so a reload of that page shows it no more.
"""

from django.utils import timezone

_KEY = "dashboard:new-token:{}"


def keep(session, bucket_id: str, token: str, token_id: int) -> None:
    session[_KEY.format(bucket_id)] = {
        "token": token,
        "id": token_id,
        "created_at": timezone.now().isoformat(),
    }


def pop(session, bucket_id: str) -> dict | None:
    """The token waiting to be shown for the bucket, taken out of the session; None if none."""
    return session.pop(_KEY.format(bucket_id), None)
