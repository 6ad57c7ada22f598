"""Tollgate settings: one module, every knob read from the environment.

django-environ does the typing; a value that does not parse stops the process at start
with ImproperlyConfigured naming the variable, rather than failing on the first request.
"""

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("TOLLGATE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def read_or_create_secret(name: str) -> str:
    """A secret from the environment, or one generated once and kept under var/.

    Self-hosted installs then work out of the box; production sets the variable.
    """
    value = env.str(name, default="")
    if value:
        return value
    path = VAR_DIR / name.lower()
    try:
        # Created exclusively and private from the first byte: two processes starting together
        # must end up with the same secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = read_or_create_secret("SECRET_KEY")
# Keyed hash for API keys and the Fernet key for provider credentials. Changing either
# invalidates every stored key or credential, so they are separate from SECRET_KEY.
API_KEY_PEPPER = read_or_create_secret("API_KEY_PEPPER")
CREDENTIALS_KEY = read_or_create_secret("CREDENTIALS_KEY")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "gateway",
    "billing",
    "usage",
    "providers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, dashboard) served by the app itself, async, no CDN.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway.urls"
ASGI_APPLICATION = "gateway.asgi.application"

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
            ],
        },
    },
]

if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    # Built directly, not as a sqlite:/// URL: a path with '+' or '%' in it must stay as it is.
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "tollgate.sqlite3")}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # two settlements never deadlock upgrading a read lock; busy_timeout waits instead of
    # failing with "database is locked" under concurrency.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not the in-memory default: tests serve the gateway over real HTTP from other
    # threads, which must all see the same database.
    # One per test process: two suites running at once must not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tollgate"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-ratelimit refuses LocMem because it is per process. One process is the default
# deployment (`make run`); set REDIS_URL to share request-rate counters across workers.
RATELIMIT_USE_CACHE = "default"
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
}
# Tests and runserver find static files without collectstatic.
SERVESTATIC_USE_FINDERS = DEBUG or env.bool("SERVESTATIC_USE_FINDERS", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every upstream request at INFO: a line per API call, with its URL.
    "loggers": {"httpx": {"level": "WARNING"}},
}

# --- the /v1 gateway -------------------------------------------------------------------
# Largest request body /v1 accepts; larger bodies get 413 before they are parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# How long an authenticated key, its tenant and plan are served from process memory.
# A key revoked elsewhere stops working within this many seconds (at once in this process).
KEY_CACHE_SECONDS = env.float("KEY_CACHE_SECONDS", default=5.0)
# Catalog (providers, models, prices, credentials) cache lifetime.
CATALOG_CACHE_SECONDS = env.float("CATALOG_CACHE_SECONDS", default=10.0)
# "aiohttp" (httpx API over aiohttp's pool, faster under concurrency) or "httpx".
HTTPX_TRANSPORT = env.str("HTTPX_TRANSPORT", default="aiohttp")
# Open upstream connections per process; each in-flight stream holds one.
UPSTREAM_MAX_CONNECTIONS = env.int("UPSTREAM_MAX_CONNECTIONS", default=4096)
# A reservation not settled after this long is released by the ledger writer's sweeper (its
# process died); longer than any provider's total timeout.
RESERVATION_TTL_SECONDS = env.int("RESERVATION_TTL_SECONDS", default=1800)
# Circuit breaker per deployment: this many failures within the window open it for the cool-down.
BREAKER_FAILURES = env.int("BREAKER_FAILURES", default=5)
BREAKER_WINDOW_SECONDS = env.float("BREAKER_WINDOW_SECONDS", default=60.0)
BREAKER_COOLDOWN_SECONDS = env.float("BREAKER_COOLDOWN_SECONDS", default=30.0)
# Retries of one upstream call before the first byte reached the client.
UPSTREAM_MAX_RETRIES = env.int("UPSTREAM_MAX_RETRIES", default=2)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# --- billing (Stripe) ------------------------------------------------------------------
# Empty = billing not configured: operators assign plans in the admin. STRIPE_API_BASE points
# stripe-python at another API host (a local fake in tests).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
