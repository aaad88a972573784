"""The thisdb.* system checks."""

from thisdb_site import checks

POSTGRESQL, SQLITE = "django.db.backends.postgresql", "django.db.backends.sqlite3"


def test_w001_warns_about_the_embedded_secret_key(settings):
    settings.SECRET_KEY = settings.THISDB_EMBEDDED_SECRET_KEY
    assert [w.id for w in checks.check_secret_key(None)] == ["thisdb.W001"]
    settings.SECRET_KEY = "a-real-secret-" * 4
    assert checks.check_secret_key(None) == []


def test_w002_warns_about_postgresql_without_redis():
    assert [w.id for w in checks.shared_limits_warnings(POSTGRESQL, "")] == ["thisdb.W002"]
    assert checks.shared_limits_warnings(POSTGRESQL, "redis://127.0.0.1:6379/0") == []


def test_sqlite_without_redis_is_the_embedded_default_and_fine():
    assert checks.shared_limits_warnings(SQLITE, "") == []


def test_the_suite_itself_is_configured_without_warnings(settings):
    assert checks.check_shared_limits(None) == []


def test_w003_warns_about_a_pool_smaller_than_the_threads():
    assert [w.id for w in checks.pool_size_warnings(3, 2, 2)] == ["thisdb.W003"]
    assert checks.pool_size_warnings(4, 2, 2) == []
    assert checks.pool_size_warnings(0, 2, 2) == []  # no pool: a connection per thread


def test_the_default_pool_fits_both_kinds_of_threads():
    assert checks.check_pool_size(None) == []
