"""Security of the web pages: a Content-Security-Policy on every page that the pages pass, CSRF
on every form, logins behind a TLS-terminating proxy, and `check --deploy` clean in production."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import Client

from tests.conftest import PASSWORD

PROJECT = Path(__file__).resolve().parents[1]

ANONYMOUS_PAGES = [
    "/",
    "/docs/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/api/docs/",
]
PERSON_PAGES = [
    "/buckets/",
    "/buckets/{bucket}/",
    "/buckets/{bucket}/key/",
    "/buckets/{bucket}/key/?key=k",
    "/buckets/{bucket}/delete/",
    "/buckets/{bucket}/delete-prefix/?prefix=k",
    "/keys/",
    "/keys/{key_id}/revoke/",
    "/usage/",
    "/account/",
    "/account/delete/",
    "/accounts/email/",
    "/accounts/password/change/",
    "/accounts/2fa/",
]
STAFF_PAGES = ["/admin/", "/admin/overview/", "/admin/auth/user/", "/admin/api/item/"]


def inline_scripts_without_nonce(html: str) -> list[str]:
    """<script> elements that run inline code without the page's nonce (JSON data is inert)."""
    return [
        tag
        for tag in re.findall(r"<script\b[^>]*>", html, re.I)
        if "src=" not in tag and "nonce=" not in tag and "application/json" not in tag
    ]


def check_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    # The nonce appears only on pages that use one (django-csp adds it when a template asks).
    assert re.search(r"script-src 'self'( 'nonce-[^']+')?(;|$)", policy), policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    html = response.content.decode()
    assert inline_scripts_without_nonce(html) == [], path
    assert not re.search(r"<style(?![^>]*nonce=)[^>]*>", html), path
    assert not re.search(r"<[a-z]+ [^>]*\bon[a-z]+=", html, re.I), path  # no onclick= etc.


@pytest.mark.parametrize("path", ANONYMOUS_PAGES)
def test_anonymous_pages_carry_a_strict_csp_they_pass(db, path):
    check_page(Client(), path)


@pytest.mark.parametrize("path", PERSON_PAGES)
def test_a_persons_pages_carry_a_strict_csp_they_pass(alice, bucket, path):
    alice.set(bucket, "k", "v")
    check_page(alice.browser, path.format(bucket=bucket, key_id=alice.api_key.pk))


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_staff_pages_carry_a_csp(staff, path):
    response = staff.browser.get(path)
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_the_api_answers_carry_no_page_headers(alice, bucket):
    response = alice.client.get(f"/v1/{bucket}")
    assert "Content-Security-Policy" not in response
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies


@pytest.mark.parametrize(
    "path, data",
    [
        ("/keys/", {"name": "x", "expires_in_days": "0"}),
        ("/buckets/", {"default_ttl": "0"}),
        ("/account/delete/", {"password": PASSWORD}),
        ("/accounts/logout/", {}),
    ],
)
def test_every_form_needs_its_csrf_token(alice, path, data):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice.user)
    response = browser.post(path, data)
    assert response.status_code == 403
    assert browser.get("/account/").status_code == 200  # still there, still logged in


def test_login_needs_its_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    assert response.status_code == 403


def csrf_token(client: Client, path: str, **headers) -> str:
    html = client.get(path, headers=headers).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


PROXY = {"X-Forwarded-Proto": "https", "Origin": "https://thisdb.example.com"}


def test_behind_a_tls_proxy_the_staff_login_works(staff, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["thisdb.example.com"]
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="thisdb.example.com")
    token = csrf_token(browser, "/accounts/login/?next=/admin/", **PROXY)
    response = browser.post(
        "/accounts/login/?next=/admin/",
        {"login": staff.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers=PROXY,
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert browser.get("/admin/", headers=PROXY).status_code == 200


def test_without_the_proxy_setting_the_https_origin_is_refused(staff, settings):
    """Why SECURE_PROXY_SSL_HEADER exists: Django sees http and refuses the https Origin."""
    settings.ALLOWED_HOSTS = ["thisdb.example.com"]
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="thisdb.example.com")
    token = csrf_token(browser, "/accounts/login/", **PROXY)
    response = browser.post(
        "/accounts/login/",
        {"login": staff.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers=PROXY,
    )
    assert response.status_code == 403


def test_behind_a_tls_proxy_the_api_works(alice, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    response = alice.client.post("/v1/", headers=PROXY)
    assert response.status_code == 200
    assert len(response.content) == 20


PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnopqrstuv",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "thisdb.example.com",
    "SECURE_PROXY_SSL_HEADER": "true",
    "CSRF_TRUSTED_ORIGINS": "https://thisdb.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_COOKIES": "true",
}


def deploy_check(extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=PROJECT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    done = deploy_check(PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_check_deploy_names_what_production_lacks():
    done = deploy_check({})
    output = done.stdout + done.stderr
    for check_id in ("thisdb.W001", "security.W016", "security.W004", "security.W008"):
        assert check_id in output
    # Django's own CSRF middleware is installed (the API leaves the chain before it): no false
    # "no CSRF protection" warning, and its real warning about the cookie above.
    assert "security.W003" not in output


def test_djangos_csrf_check_sees_the_csrf_middleware(settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "django.middleware.csrf.CsrfViewMiddleware"
    ]
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    assert "security.W003" in ids


def test_behind_a_proxy_the_limits_count_the_client_not_the_proxy(settings, alice):
    settings.THISDB_PROXY_COUNT = 1
    settings.MIDDLEWARE = ["thisdb_site.middleware.ForwardedForMiddleware", *settings.MIDDLEWARE]
    settings.THISDB_AUTH_FAILURES_RATE = "3/m"

    def wrong_key(client_address: str) -> int:
        return (
            Client(headers={"X-Api-Key": "wrong", "X-Forwarded-For": client_address})
            .get("/v1/AAAAAAAAAAAAAAAAAAAA")
            .status_code
        )

    # The proxy is always 127.0.0.1; the clients it forwards for are counted apart.
    assert [wrong_key("203.0.113.7") for _ in range(4)] == [403, 403, 403, 429]
    assert wrong_key("198.51.100.9") == 403
    # A forged entry before the proxy's own is not believed: the proxy appended the real one.
    assert wrong_key("198.51.100.9, 203.0.113.7") == 429
