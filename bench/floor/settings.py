"""The floor's settings: the product's database, Redis and serving figures, nothing else.

No apps, no middleware, no templates: what is left of a request is the server, Django's request
and response, one Redis round trip and one SQL statement.
"""

from thisdb_site import settings as product

SECRET_KEY = "the-floor-has-no-secrets"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.floor.urls"
DATABASES = product.DATABASES
REDIS_URL = product.REDIS_URL
THISDB_REDIS_PREFIX = product.THISDB_REDIS_PREFIX
THISDB_WEB_THREADS = product.THISDB_WEB_THREADS
THISDB_BODY_TIMEOUT = product.THISDB_BODY_TIMEOUT
DATA_UPLOAD_MAX_MEMORY_SIZE = product.DATA_UPLOAD_MAX_MEMORY_SIZE
USE_TZ = True
USE_I18N = False
LOGGING_CONFIG = None
