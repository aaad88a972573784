"""Signup answers a registered email as it answers a new one (ACCOUNT_PREVENT_ENUMERATION), and
in as much time: measured against the production web tier with its production password hasher
(PBKDF2; this test process itself hashes with MD5, tests/conftest.py)."""

import statistics
import time

import httpx
import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import connection

from tests.conftest import PASSWORD, RUN_PREFIX
from tests.serving import served

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = 24  # of each kind, interleaved
WARM_UP = 4  # of each kind first, not counted: each worker's first requests load its code


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def timed_signup(port: int, email: str, address: str) -> float:
    """Seconds the signup POST took (the form's GET before it is not counted)."""
    # Behind THISDB_PROXY_COUNT=1 each signup comes from an address of its own, so the
    # per-address signup limit never answers in place of the form.
    headers = {"X-Forwarded-For": address}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        client.get("/accounts/signup/")
        data = {
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
        started = time.perf_counter()
        response = client.post("/accounts/signup/", data=data)
        took = time.perf_counter() - started
    assert response.status_code == 302, response.text[:500]
    assert response.headers["Location"] == "/accounts/confirm-email/"
    return took


def test_signup_takes_as_long_for_a_registered_email_as_for_a_new_one(tmp_path):
    registered = []
    for n in range(WARM_UP + SAMPLES):
        email = f"known{n}@example.com"
        user = get_user_model().objects.create_user(f"known{n}", email, PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        registered.append(email)
    times: dict[str, list[float]] = {"registered": [], "new": []}
    with served(
        database_url(),
        tmp_path / "server.log",
        THISDB_REDIS_PREFIX=f"{RUN_PREFIX}-signup-timing",
        THISDB_PROXY_COUNT="1",
        WEB_WORKERS="2",
    ) as port:
        for n, known in enumerate(registered):
            pair = [("registered", known), ("new", f"new{n}@example.com")]
            if n % 2:
                pair.reverse()  # neither kind always goes first
            for kind, email in pair:
                took = timed_signup(port, email, f"10.9.{n}.{len(times[kind])}")
                if n >= WARM_UP:
                    times[kind].append(took)
    registered_median = statistics.median(times["registered"])
    new_median = statistics.median(times["new"])
    figures = f"registered {registered_median * 1000:.0f} ms, new {new_median * 1000:.0f} ms"
    assert new_median > 0.05, f"the server does not hash like production: {figures}"
    assert abs(registered_median - new_median) <= 0.2 * max(registered_median, new_median), figures
    assert get_user_model().objects.filter(email__startswith="new").count() == WARM_UP + SAMPLES
