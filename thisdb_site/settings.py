"""ThisDB settings: one file, driven by environment variables.

Without DATABASE_URL the platform runs on a SQLite file and without REDIS_URL on in-process
fallbacks, so `make run` works on a machine with nothing but Python. Production sets both.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from thisdb_site import database_urls

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean env var strictly: a typo must not silently turn DEBUG on or off."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """Read a whole-number env var; refuse anything else at start-up, not on the first request."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, not {number}")
    return number


DEBUG = env_bool("DEBUG", False)
# The embedded default needs no setup; production sets SECRET_KEY (`check --deploy` warns while
# it is this one: thisdb.W001).
THISDB_EMBEDDED_SECRET_KEY = "insecure-embedded-default-set-SECRET_KEY-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", "") or THISDB_EMBEDDED_SECRET_KEY


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")

INSTALLED_APPS = [
    "console.apps.ThisDBAdminConfig",  # Django's admin with the staff overview
    # Before django.contrib.auth: its createsuperuser (an email required, recorded as verified)
    # replaces auth's, as the first app with a command of a name wins.
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "api",
    "dashboard",
    "console",
]

MIDDLEWARE = [
    # First: every answer gets the request's id (X-Request-Id), and its log line is written here.
    "thisdb_site.requestlog.RequestLogMiddleware",
    "thisdb_site.middleware.CorsMiddleware",
    # /v1/ requests go from here straight to their view: what follows serves the web pages.
    # (Their nosniff header is the API's own, api.dispatch; the https rules, SSL redirect and
    # HSTS, ApiMiddleware applies itself.)
    "thisdb_site.middleware.ApiMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # A suspended person whose session was open is told so, not sent to the login form.
    "thisdb_site.middleware.SuspendedSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# A redirected POST loses its body: /v1/<bucket> and /v1/<bucket>/ are both routed instead.
APPEND_SLASH = False

ROOT_URLCONF = "thisdb_site.urls"
WSGI_APPLICATION = "thisdb_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "thisdb_site.context_processors.support",
            ],
        },
    },
]

# PostgreSQL connections come from a pool of a fixed size in each web (and Celery) process
# (psycopg_pool, Django's own support): every process together opens at most
# processes x DATABASE_POOL_SIZE connections, which must stay well under max_connections minus
# the slots kept for operators (README, "Database connections"). A request that finds no free
# connection within DATABASE_POOL_TIMEOUT seconds is answered 503 with Retry-After, never 500.
# DATABASE_POOL_SIZE=0 turns the pool off (one persistent connection per thread instead).
# Requests inside Django at once in one web process (`make serve`: thisdb_site.asgi), so the
# threads a process runs are bounded; each needs at most one database connection at a time, so
# the pool's size follows it unless set.
THISDB_WEB_THREADS = env_int("THISDB_WEB_THREADS", 2, minimum=1)
# Exports (GET /v1/<bucket>?all=true) and imports (POST /v1/<bucket> with NDJSON or a JSON
# array): false answers as a server without them does (a page of the listing; the body read as
# a transaction, a 400), e.g. to keep every write under the per-key rule, which an import does
# not claim. Clients then fall back to paging and one write per key.
THISDB_BULK = env_bool("THISDB_BULK", True)
# Bulk transfers (an export, a streamed import) at once per web process, in threads of their
# own, so that they never take the threads above: 2, so that an export and an import (a copy
# between buckets, piped) fit in one process. Each holds a database connection for its whole
# length (a million keys: about 10 s); one more is refused with a 503 and Retry-After.
THISDB_BULK_THREADS = env_int("THISDB_BULK_THREADS", 2, minimum=1)
# Seconds a request's body may take to arrive before the server gives up on it (408).
THISDB_BODY_TIMEOUT = env_int("THISDB_BODY_TIMEOUT", 30, minimum=1)
# One connection for each thread of either kind, so a bulk transfer never waits for, nor keeps
# waiting, a normal request; the watch hub's reads (api.watchhub) take one of these for the few
# ms a read lasts.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", THISDB_WEB_THREADS + THISDB_BULK_THREADS)
DATABASE_POOL_TIMEOUT = env_int("DATABASE_POOL_TIMEOUT", 2, minimum=1)
# Parameters bound by the server, and a statement run a 5th time on a connection prepared:
# PostgreSQL parses and plans each of the API's few statements once per connection instead
# of once per request, which halves its CPU per request (bench/NOTES.md). Django leaves
# this off for external poolers; ours is in-process. DATABASE_PREPARED_STATEMENTS=false
# for a pooler that cannot keep them (PgBouncer before 1.21 in transaction mode): plain
# client-side binding then, which no statement of the platform depends on.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
# Behind a pooler in transaction mode (PgBouncer's pool_mode = transaction) a client's
# consecutive transactions may run on different server connections, so nothing may outlive a
# transaction. The one thing that did is a transaction's bucket lock, taken before its BEGIN so
# that its REPEATABLE READ snapshot follows the lock (api.history.transaction_lock). With this
# on, a transaction takes the lock inside itself instead, exclusive, at READ COMMITTED: each of
# its statements then sees every write before the lock, and no other write to the bucket comes
# in until it commits. The price: a bucket's transactions run one at a time (README).
DATABASE_TRANSACTION_POOLING = env_bool("DATABASE_TRANSACTION_POOLING", False)


def database(url: str) -> dict:
    """One entry of DATABASES, from DATABASE_URL or DATABASE_REPLICA_URL. Either may name
    several PostgreSQL hosts, libpq's way (`postgres://u@h1:5432,h2:5432/db?
    target_session_attrs=read-write`): each new connection tries them in turn and keeps the one
    that takes writes, so after a failover the pool finds the new primary by itself."""
    db = database_urls.parse(
        url,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # No "SELECT 1" before each request's first query: a connection that fails is closed at
        # the end of its request (Django checks one that saw an error) and the next reconnects,
        # so a broken connection costs one 503, where a check would cost every request a trip.
        conn_health_checks=False,
    )
    options = db.setdefault("OPTIONS", {})
    if db["ENGINE"].endswith("sqlite3"):
        # Write-ahead logging: a reader (an export's snapshot, api.exports, for as long as it is
        # sent) never blocks a writer, nor a writer a reader. The file stays in this mode.
        options["init_command"] = "PRAGMA journal_mode=WAL"
    if db["ENGINE"].endswith("postgresql"):
        # Django's backend, refusing a connection at once while this process knows the server is
        # unreachable (a 503 within milliseconds, not after the pool's timeout;
        # thisdb_site.outages).
        db["ENGINE"] = "thisdb_site.postgresql"
        options.setdefault("connect_timeout", 3)  # s: fail fast (per host of a multi-host URL)
        if DATABASE_PREPARED_STATEMENTS:
            options["server_side_binding"] = True
            options["prepare_threshold"] = 5  # psycopg's own default
        if DATABASE_POOL_SIZE:
            db["CONN_MAX_AGE"] = 0  # the pool keeps the connections
            options["pool"] = {
                "min_size": 1,
                "max_size": DATABASE_POOL_SIZE,
                "timeout": DATABASE_POOL_TIMEOUT,
                "max_idle": 60,  # seconds: after a burst the pool shrinks back within a minute
                # A connection the pool fails to open is retried after 1, 2, 4... s; it gives up
                # after 2 s. Meanwhile the process's breaker is open (thisdb_site.outages):
                # requests are refused at once, and its probe, twice a second, finds the database
                # again within a second of its return, however long it was away
                # (tests/test_outage.py). No `check` before lending a connection (a round trip
                # per request): one the server closed (a restart, a failover) fails its request
                # with a 503 and the pool drops it when it comes back broken.
                "reconnect_timeout": 2,
            }
    return db


# PostgreSQL from DATABASE_URL; a SQLite file beside the project otherwise.
DATABASES = {
    "default": database(os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
# A streaming replica of it for the pages' heavy reads (usage charts, the staff overview, bucket
# figures; thisdb_site.routers); the API and every write stay on the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = database(DATABASE_REPLICA_URL)
    # Tests make no database of their own for it: in tests, "replica" is the test database
    # itself (Django's mirror), so the pages' reads find what the test wrote.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["thisdb_site.routers.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis from REDIS_URL; in-process fallbacks otherwise (one process only: fine for `make run`).
REDIS_URL = os.environ.get("REDIS_URL", "")
# REDIS_CLUSTER=true: REDIS_URL names any node of a Redis Cluster (api.redis_clients).
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER is true but REDIS_URL is not set: name a node.")


def redis_cache(url: str, cluster: bool) -> dict:
    """The Django cache on the Redis of `url` (django-redis)."""
    options: dict = {
        "SOCKET_CONNECT_TIMEOUT": 0.25,
        "SOCKET_TIMEOUT": 0.25,
        # A cache that cannot be reached is a miss, never a 500.
        "IGNORE_EXCEPTIONS": True,
    }
    if cluster:
        # django-redis, kept on a cluster for what the platform relies on (a cache that fails
        # open, delete_pattern), with its pluggable client and connection factory: it ships
        # none for a cluster, nor does Django's own Redis backend (thisdb_site.cluster_cache).
        options["CLIENT_CLASS"] = "thisdb_site.cluster_cache.ClusterClient"
        options["CONNECTION_FACTORY"] = "thisdb_site.cluster_cache.ClusterConnectionFactory"
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": os.environ.get("THISDB_REDIS_PREFIX", "thisdb"),
        "OPTIONS": options,
    }


if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL, REDIS_CLUSTER)}
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"  # `manage.py collectstatic` fills it for production
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every start if it is missing
# WhiteNoise serves the admin's and the API docs' assets in every mode, from the apps' folders
# (no collectstatic needed; run it in production for compressed, cached files).
WHITENOISE_USE_FINDERS = True

# --- The web platform: accounts (django-allauth), email, security ----------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # the admin's own checks
    "allauth.account.auth_backends.AuthenticationBackend",  # log in by email
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:buckets"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"  # no API key before the address is proven
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # a link scanner must not confirm for the person
ACCOUNT_CHANGE_EMAIL = True  # one address per account; a change is verified before it counts
ACCOUNT_PREVENT_ENUMERATION = True  # signup and reset answer alike for known and unknown emails
# ... and signup takes as long for both: it hashes the password of a known email too.
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_SESSION_REMEMBER = None  # the login form asks
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[ThisDB] "
ACCOUNT_USER_DISPLAY = "accounts.identity.user_display"  # by email, never the made-up username
# Logins, failed logins, password and email changes written to the security log, each in the
# transaction of its change (accounts.security).
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
# An email to the person when their password, email or two-factor settings change, saying from
# which address and browser: a change they did not make is then noticed.
ACCOUNT_EMAIL_NOTIFICATIONS = True
# A logged-in person may still open the login page: the admin sends non-staff there, and
# redirecting them onwards would loop.
ACCOUNT_AUTHENTICATED_LOGIN_REDIRECTS = False
# Login, two-factor codes, signup and password reset are limited per address, per email and per
# user by accounts.ratelimits (a page that says when to try again); allauth's own limits stay on
# for the other actions. (allauth's "login_failed" also held its per-user limit on two-factor
# codes, but it refuses the right password of an account under attack too: ours replace both.)
ACCOUNT_RATE_LIMITS = {
    "login": False,
    "login_failed": False,
    "signup": False,
    "reset_password": False,
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "ThisDB"
# The code steps, each code counted by accounts.ratelimits before it is checked.
MFA_FORMS = {
    "authenticate": "accounts.twofactor.AuthenticateForm",
    "reauthenticate": "accounts.twofactor.ReauthenticateForm",
}

# Email: printed on the console unless EMAIL_HOST names an SMTP server.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    EMAIL_TIMEOUT = 10  # a slow mail server must not hold a web worker for long
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "ThisDB <noreply@localhost>")
# Where people reach the platform, for links in emails sent outside a request (beat's).
THISDB_BASE_URL = os.environ.get("THISDB_BASE_URL", "http://127.0.0.1:8000")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where people write to the staff (a suspended person is told to): support@ the platform's host.
_BASE_HOST = urlsplit(THISDB_BASE_URL).hostname or "localhost"
if _BASE_HOST.replace(".", "").isdigit():
    _BASE_HOST = "localhost"  # an address, not a name a mailbox can live at
THISDB_SUPPORT_EMAIL = os.environ.get("THISDB_SUPPORT_EMAIL") or f"support@{_BASE_HOST}"

# The security log (accounts.security) keeps each event this many days, then beat deletes it.
# 90: a stolen password or key is often used weeks after it leaked, and a quarter lets its owner
# look back that far; the log holds client addresses, personal data kept no longer than that.
THISDB_SECURITY_LOG_DAYS = env_int("THISDB_SECURITY_LOG_DAYS", 90, minimum=1)

# How many proxies in front of the platform append to X-Forwarded-For (1 behind the shipped
# nginx site, deploy/nginx/thisdb.conf); 0 trusts no such header. See ForwardedForMiddleware.
THISDB_PROXY_COUNT = env_int("THISDB_PROXY_COUNT", 0)
if THISDB_PROXY_COUNT:
    # Right after the request log's: it logs the address this one finds.
    MIDDLEWARE.insert(1, "thisdb_site.middleware.ForwardedForMiddleware")

# Behind a TLS-terminating proxy (see the README): opt in to trusting its X-Forwarded-Proto, so
# request.is_secure() is true and CSRF accepts the https Origin.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
SESSION_COOKIE_HTTPONLY = True
# Sessions in the database, never in a cookie: a new API key's secret waits in the session
# until the keys page shows it (dashboard.account.keys).
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 14 * 86400  # two weeks, unless "remember me" is off (browser session)
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy on every page (django-csp): our own scripts and styles only, inline
# script only with the request's nonce. The API's answers are not pages and carry none.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],  # the TOTP QR code is a data: URI
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- The v1 API -------------------------------------------------------------------------------

# Limits of the public API. Each is documented in the README's "Limits" table.
THISDB_KEY_MAX_BYTES = env_int("THISDB_KEY_MAX_BYTES", 512, minimum=1)  # key: 1..512 bytes UTF-8
THISDB_VALUE_MAX_BYTES = env_int("THISDB_VALUE_MAX_BYTES", 1024 * 1024, minimum=1)  # 1 MiB
# A transaction's JSON body (POST /v1/<bucket>): up to 1,000 ops of values up to 1 MiB each.
THISDB_TRANSACTION_MAX_BYTES = env_int("THISDB_TRANSACTION_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
THISDB_LIST_MAX_LIMIT = 1000  # rows per list page (spec: default and maximum 1000)
THISDB_DEFAULT_TTL = 604800  # a bucket's default key ttl: 7 days (spec)
THISDB_MAX_TTL = 10 * 365 * 86400  # 10 years: any longer is "never" (ttl=0)
THISDB_TOKEN_MAX_TTL = 86400  # a token lives at most a day (spec)
# One write per second per key (spec); 0 turns the limit off.
THISDB_KEY_WRITES_PER_SECOND = env_int("THISDB_KEY_WRITES_PER_SECOND", 1)
# The free plan's quotas (a plan or an account may set others; see accounts.quotas).
THISDB_REQUESTS_PER_HOUR = env_int("THISDB_REQUESTS_PER_HOUR", 1000)  # per API key (spec)
THISDB_MAX_BUCKETS = env_int("THISDB_MAX_BUCKETS", 100)  # buckets per account
THISDB_MAX_KEYS_PER_BUCKET = env_int("THISDB_MAX_KEYS_PER_BUCKET", 100_000)
THISDB_MAX_STORED_BYTES = env_int("THISDB_MAX_STORED_BYTES", 1024**3)  # 1 GiB per account
# The bucket page's import takes a file up to this size (1 GiB: the free plan's storage, in
# NDJSON). Django writes an upload to a temporary file before any of it is imported: this bounds
# the disk it takes. The API's import (and `thisdb import`) streams, with no such bound.
THISDB_PAGE_IMPORT_MAX_BYTES = env_int("THISDB_PAGE_IMPORT_MAX_BYTES", 1024**3, minimum=1)
# Live API keys per account: each has its own hourly requests, so this bounds an account's total.
THISDB_MAX_API_KEYS = env_int("THISDB_MAX_API_KEYS", 10)
# Watch streams and long-polls open at once per account (free plan): each holds a connection.
THISDB_MAX_WATCHES = env_int("THISDB_MAX_WATCHES", 20)
# Watching (api.history, api.watchhub): a bucket's changes are kept this long (seconds) for
# watchers that resume, then swept by beat; a stream says ": keep-alive" after this many quiet
# seconds (proxies close idle connections, often at 60 s); a hub reads the history of the buckets
# it watches at least this often even without a notice (a lost one, Redis down): the most a
# change can be late.
THISDB_WATCH_HISTORY = env_int("THISDB_WATCH_HISTORY", 3600, minimum=60)
THISDB_WATCH_KEEPALIVE_SECONDS = env_int("THISDB_WATCH_KEEPALIVE_SECONDS", 15, minimum=1)
THISDB_WATCH_POLL_SECONDS = env_int("THISDB_WATCH_POLL_SECONDS", 2, minimum=1)
# ... and asks the database this often whether its streams' keys and tokens still hold (what
# the notices of a revocation say at once, when Redis is away), renewing their watch slots.
THISDB_WATCH_RECHECK_SECONDS = env_int("THISDB_WATCH_RECHECK_SECONDS", 30, minimum=1)
THISDB_WATCH_SNAPSHOT_MAX = 10_000  # keys a snapshot=true sends at most (else 400)
# How long an API key, token or bucket stays in a worker's memory: a revoked key or a changed
# default_ttl reaches every worker within this many seconds. Budget: 10 s.
THISDB_AUTH_CACHE_SECONDS = env_int("THISDB_AUTH_CACHE_SECONDS", 10)
# Prefix of every Redis key this platform writes, so one Redis can serve several installations.
THISDB_REDIS_PREFIX = os.environ.get("THISDB_REDIS_PREFIX", "thisdb")
# Without REDIS_URL, the process serving the API adds its in-process request counters to the
# usage table this often (api.rollups.keep_rolling_up); budget: one upsert per key and hour with
# requests, a minute of figures lost at most when the process stops.
THISDB_LOCAL_ROLLUP_SECONDS = env_int("THISDB_LOCAL_ROLLUP_SECONDS", 60, minimum=1)

# Metrics (thisdb_site.metrics): GET /metrics in Prometheus' text format, answered only with
# `Authorization: Bearer <this token>`; unset, /metrics is a 404 and nothing is measured.
THISDB_METRICS_TOKEN = os.environ.get("THISDB_METRICS_TOKEN", "")
if THISDB_METRICS_TOKEN:
    # First: it times the whole request, the API's short way through included.
    MIDDLEWARE.insert(0, "thisdb_site.metrics.MetricsMiddleware")
# Where the Celery worker serves its own metrics (the same token): its tasks run in processes
# of their own, maybe on another machine than the web tier (docs/operations.md, "Metrics").
THISDB_WORKER_METRICS_ADDRESS = os.environ.get("THISDB_WORKER_METRICS_ADDRESS", "127.0.0.1:9808")

# Failed API key or token attempts per client IP, by django-ratelimit on the cache: guessing keys
# is refused with 429 past this (budget: 60 a minute). Fails open if the cache is unreachable.
THISDB_AUTH_FAILURES_RATE = os.environ.get("THISDB_AUTH_FAILURES_RATE", "60/m")
RATELIMIT_FAIL_OPEN = True
RATELIMIT_VIEW = "thisdb_site.views.ratelimited"

# Bodies up to the value limit are read by the API itself (413 above it); forms stay small.
DATA_UPLOAD_MAX_MEMORY_SIZE = THISDB_VALUE_MAX_BYTES + 64 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.ApiKeyOrTokenAuthentication"],
    # No permission classes: authentication itself refuses a request without credentials
    # (api.authentication), and every view scopes what the caller may do (api.scoping).
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": [
        "api.renderers.PlainTextRenderer",
        "api.renderers.JSONRenderer",
        "api.renderers.NDJSONRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [],  # bodies are read raw: a value is never parsed as a form
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.renderers.FormatNegotiation",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "URL_FORMAT_OVERRIDE": "format",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ThisDB v1 API",
    "DESCRIPTION": (
        "Buckets, keys and tokens over HTTP. Authenticate with X-Api-Key or X-Token (either); "
        "creating, changing and deleting buckets and creating tokens take an API key. Answers "
        "are text (the default), json or ndjson, by format= or Accept; success is always 200."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # the schema and its UI are public pages
    "SWAGGER_UI_DIST": "SIDECAR",  # assets served by the platform itself, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["api.schema.drop_route_twins"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default
        "api.schema.postprocess",
    ],
}

# CORS: the browser SDK calls /v1/ from any origin with its key or token in a header; a page's
# EventSource watches from any origin too (its token in the query string, without credentials:
# "*" is all it needs), and says where to resume in Last-Event-ID.
CORS_ALLOW_ALL_ORIGINS = True
CORS_URLS_REGEX = r"^/v1(/|\Z)"  # not `.*$`: `.` stops at a newline, which a key may hold
CORS_ALLOW_HEADERS = [
    "accept",
    "content-type",
    "x-api-key",
    "x-token",
    "last-event-id",
    "x-request-id",  # a page may name its request, to find it in the logs
]
CORS_EXPOSE_HEADERS = [
    "x-request-id",
    "x-next-cursor",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
]

# --- Celery: CELERY_BROKER_URL, else Redis, else kombu's filesystem transport in var/celery/ -----

# RabbitMQ (amqp://user:password@host:5672/vhost) is Celery's own recommendation for production:
# a broker apart from the Redis of the counters, which may then be a Redis Cluster (not a broker).
if REDIS_CLUSTER and not os.environ.get("CELERY_BROKER_URL"):
    # kombu's Redis transport and Celery's Redis result backend speak to one Redis only.
    raise ImproperlyConfigured(
        "REDIS_CLUSTER is true but CELERY_BROKER_URL is not set: Celery cannot use a Redis "
        "Cluster as its broker. Set CELERY_BROKER_URL (e.g. amqp://guest@127.0.0.1:5672//)."
    )
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem:"):
    _CELERY_DIR = Path(os.environ.get("THISDB_CELERY_DIR", BASE_DIR / "var" / "celery"))
    for _folder in ("queue", "processed", "results", "control"):
        (_CELERY_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_CELERY_DIR / "queue"),
        "data_folder_out": str(_CELERY_DIR / "queue"),
        "processed_folder": str(_CELERY_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(_CELERY_DIR / "control"),
    }
    CELERY_RESULT_BACKEND = f"file://{_CELERY_DIR / 'results'}"
elif CELERY_BROKER_URL.startswith(("redis:", "rediss:")):
    CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# On any other broker (RabbitMQ), no result backend: nothing in the platform reads a task's
# result. Beat sends and forgets; the staff overview learns that tasks ran from the heartbeats
# the worker writes to PostgreSQL (console.TaskHeartbeat) and pings workers through the broker.
# (Celery's rpc:// backend would queue each of beat's results in RabbitMQ for nobody to read.)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # short periodic tasks: no hoarding by one worker
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Every entry says its budget. `expires` drops a run that waited longer than its period (a
# backed-up queue must not run the same sweep ten times in a row); every task is idempotent.
CELERY_BEAT_SCHEDULE = {
    # Delete expired keys, 2,000 rows a statement (api.statements.SWEEP_BATCH: about 10 ms
    # each), resting as long as each took; budget: 55 s a run (its time limit).
    "sweep-expired-items": {
        "task": "api.tasks.sweep_expired_items",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Delete changes older than THISDB_WATCH_HISTORY (api.history.sweep: 5,000 rows a statement
    # found by a BRIN index); budget: a few ms a minute at 1,000 writes/s.
    "sweep-history": {
        "task": "api.tasks.sweep_history",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Delete expired tokens (one DELETE on the expires_at index); budget: a few ms.
    "sweep-expired-tokens": {
        "task": "api.tasks.sweep_expired_tokens",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # Copy request counters into UsageHour, reset ended hours; budget: 25 Redis reads + 1 upsert
    # per active hour.
    "roll-up-usage": {
        "task": "api.tasks.roll_up_usage",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Recount keys and bytes per bucket and account for the quotas; budget: one scan of the
    # items a minute (see api.rollups.refresh_stored_figures).
    "refresh-stored-figures": {
        "task": "api.tasks.refresh_stored_figures",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Revoke expired API keys (one UPDATE) and email owners a week before (one email per key,
    # once); budget: a few ms plus the emails. The API refuses expired keys on its own already.
    "expire-api-keys": {
        "task": "accounts.tasks.expire_api_keys",
        "schedule": 600.0,
        "options": {"expires": 590},
    },
    # Delete security events older than THISDB_SECURITY_LOG_DAYS, 5,000 a statement
    # (accounts.security.prune), resting as long as each took; budget: a few ms an hour.
    "prune-security-events": {
        "task": "accounts.tasks.prune_security_events",
        "schedule": 3600.0,
        "options": {"expires": 3590},
    },
}

# "text" (the default): Python's plain lines, and no line per request. "json": one JSON object a
# line, with a line per request and per Celery task run (thisdb_site.requestlog), for a log
# shipper to parse.
THISDB_LOG_FORMAT = os.environ.get("THISDB_LOG_FORMAT", "text").strip().lower() or "text"
if THISDB_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(
        f"THISDB_LOG_FORMAT must be text or json, not {os.environ['THISDB_LOG_FORMAT']!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "thisdb_site.requestlog.JsonLines"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            **({"formatter": "json"} if THISDB_LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The pool warns at every failed connection attempt (a few a second per process during an
    # outage); thisdb_site.outages logs one line per outage per process instead.
    "loggers": {"psycopg.pool": {"level": "ERROR"}},
}
