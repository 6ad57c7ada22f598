"""Tollgate settings: one module as Django sees it, every knob read from the environment.

django-environ does the typing; a value that does not parse stops the process at start
with ImproperlyConfigured naming the variable, rather than failing on the first request.
Written in three files, read as this one:
    gateway/settings.py           Django and its libraries: apps, database, caches, accounts, static
                                  and media storage, logging, the management API, Stripe's keys
    gateway/settings_runtime.py   the gateway's own knobs: /v1 limits, the answer cache, upstream
                                  calls, reservations, serve and probes, background jobs, alerts,
                                  video jobs, outbound fetches, the gateway's tools
    gateway/settings_env.py       the typed env helpers both use
"""

import logging
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from gateway.secret_files import read_or_create_secret
from gateway.settings_env import env, networks
from gateway.settings_runtime import *  # noqa: F403  (its names are settings: Django reads this module)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("TOLLGATE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
# Generated into var/ when unset (gateway/secret_files.py). Keyed hash for API keys and the
# Fernet key for provider credentials: changing either invalidates every stored key or
# credential, so they are separate from SECRET_KEY, and a set one must be 32 characters or more.
SECRET_KEY = read_or_create_secret("SECRET_KEY", var_dir=VAR_DIR)
API_KEY_PEPPER = read_or_create_secret("API_KEY_PEPPER", var_dir=VAR_DIR, min_length=32)
CREDENTIALS_KEY = read_or_create_secret("CREDENTIALS_KEY", var_dir=VAR_DIR, min_length=32)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A CSRF refusal under /api/ answers in the management API's JSON error body; Django's page elsewhere.
CSRF_FAILURE_VIEW = "gateway.api.errors.csrf_failure"
# Behind a reverse proxy. TRUSTED_PROXIES: the proxies' addresses or CIDRs, whose
# X-Forwarded-For names the real client (gateway/proxies.py; the throttles key on it).
# TRUST_X_FORWARDED_PROTO: the proxy terminates TLS and says so, so links (password reset,
# media URLs) are https:// and secure cookies work. Off unless set: a client could forge them.
TRUSTED_PROXIES = networks("TRUSTED_PROXIES")
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
# The gateway's URL in links it writes (upgrade hints, Stripe's return URLs, invitations). Unset:
# the scheme and host each request came in at (gateway/proxies.py public_base_url).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")

INSTALLED_APPS = [
    "daphne",
    "gateway.apps.AdminConfig",  # django.contrib.admin, on our site (its login is throttled)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served by the app (no CDN)
    "channels",
    "gateway",
    "media",
    "conversations",
    "billing",
    "caching",
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
                "gateway.dashboard.context.dashboard",
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
    # A thread keeps its connection (the executor's, for cache-miss reads: providers/blocking.py)
    # for this long instead of opening one per read: a new SQLite connection runs the PRAGMAs and
    # parses the whole schema again at its first statement. Idle, it holds no lock (WAL).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("SQLITE_CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A file, not the in-memory default: tests serve the gateway over real HTTP from other
    # threads, which must all see the same database.
    # One per test process: two suites running at once must not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Each process keeps a pool (psycopg_pool): a connection closed after a request or a
    # cache-miss read (providers/blocking.py) goes back to it instead of being torn down. The
    # ledger writer holds one for its life; the executor's threads share the rest.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),  # waiting for a free connection
    }

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tollgate"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-ratelimit (sign-in and sign-up throttles) refuses LocMem because it is per process. One
# process is the default deployment (`make run`); set REDIS_URL to share its counters across
# workers. /v1's rate limits keep their own counts (billing/rate_limits.py), in Redis with REDIS_URL.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_IP_META_KEY = "gateway.proxies.client_address"  # the "ip" key: the real client, via TRUSTED_PROXIES
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- dashboard accounts: sign-in, sessions, mail ---------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Cookies only over HTTPS: on unless DEBUG. Browsers treat http://localhost and 127.0.0.1 as
# secure, so `make run` still signs in; set SECURE_COOKIES=false for plain HTTP on another host.
SECURE_COOKIES = env.bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_COOKIES
# HSTS on HTTPS answers (SecurityMiddleware sends it only over HTTPS, so plain-HTTP development
# never sees it): a year unless DEBUG. Subdomains and preload are the operator's choice.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600
# Failed logins (dashboard and admin together) per client address, and per username: a
# username past its rate is refused only from addresses that failed on it (gateway/login_throttle.py).
# Password-reset POSTs count per address and email at LOGIN_ATTEMPTS_RATE; signups per address.
LOGIN_ATTEMPTS_RATE = env.str("LOGIN_ATTEMPTS_RATE", default="10/15m")
LOGIN_USERNAME_RATE = env.str("LOGIN_USERNAME_RATE", default="30/h")
SIGNUP_RATE = env.str("SIGNUP_RATE", default="5/h")
# Password reset and invitation mail. consolemail:// prints it (development); production sets
# e.g. EMAIL_URL=smtp+tls://user:password@smtp.example.com:587. Tests use Django's locmem outbox.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tollgate <no-reply@localhost>")

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

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, and a request line's
# fields: gateway/v1/request_log.py). LOG_REQUESTS=false drops the line per /v1 request.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
FORMATTERS = {"plain": {"class": "gateway.log_output.Formatter",
                        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}}
if LOG_FORMAT == "json":
    from pythonjsonlogger.core import RESERVED_ATTRS

    FORMATTERS = {"json": {"()": "pythonjsonlogger.json.JsonFormatter", "timestamp": "time",
                           "fmt": "%(levelname)s %(name)s %(message)s",
                           "rename_fields": {"levelname": "level", "name": "logger"},
                           "reserved_attrs": [*RESERVED_ATTRS, "color_message"]}}  # uvicorn's, with ANSI codes
# Neither format shows a thread, a process or a source line: logging need not look them up for each
# line (Python's logging HOWTO, "Optimization"), which it does for every request's line otherwise.
logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
logging._srcfile = None
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": FORMATTERS,
    "handlers": {"console": {"class": "gateway.log_output.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every upstream request at INFO: a line per API call, with its URL.
    "loggers": {"httpx": {"level": "WARNING"},
                "tollgate.requests": {"level": "INFO" if env.bool("LOG_REQUESTS", default=True) else "WARNING"}},
}

# --- media: generated images, video and audio ----------------------------------------------
# Provider URLs expire, so every generated file is copied into the "media" storage and served
# by the app through signed, expiring, tenant-scoped URLs (media.files). "local" keeps them
# under MEDIA_ROOT; "s3" in an S3-compatible bucket (django-storages; AWS, R2, MinIO, ...).
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="local")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# How long a signed media URL works (GET /v1/media/{id} hands out a fresh one).
MEDIA_URL_TTL_SECONDS = env.int("MEDIA_URL_TTL_SECONDS", default=3600)
if MEDIA_STORAGE == "local":
    STORAGES["media"] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                         "OPTIONS": {"location": MEDIA_ROOT, "base_url": None}}
elif MEDIA_STORAGE == "s3":
    if not env.str("MEDIA_S3_BUCKET", default=""):
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET, the bucket to keep media in.")
    STORAGES["media"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": env.str("MEDIA_S3_BUCKET"),
        "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("MEDIA_S3_REGION", default="") or None,
        "access_key": env.str("MEDIA_S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("MEDIA_S3_SECRET_ACCESS_KEY", default="") or None,
        "location": env.str("MEDIA_S3_PREFIX", default=""),
        "default_acl": "private",
        "file_overwrite": False,
    }}
else:
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be 'local' or 's3', not {MEDIA_STORAGE!r}.")

# --- the management API (/api/) --------------------------------------------------------
# Signed in (session, with CSRF) or a tenant API key with the 'management' scope as a Bearer
# token; the key first, so an unauthenticated call gets 401 with WWW-Authenticate.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gateway.api.authentication.ApiKeyAuthentication",
        "gateway.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, errors included; the interactive page is /api/docs/. Bodies are JSON only too:
    # a form cannot tell an empty field from a missing one ("expires_at=" would read as never).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "gateway.api.errors.handle_api_exception",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate management API",
    "DESCRIPTION": (
        "Manage a tenant's API keys, members, usage and billing. Authenticate with a dashboard session "
        "(send the CSRF token on writes) or with a tenant API key that has the 'management' scope, as "
        "'Authorization: Bearer tg-...'; such a key reaches only its own tenant and acts as an admin. "
        "Errors are JSON: {\"error\": {\"message\", \"code\", \"fields\"}}."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge fetched from validator.swagger.io: the docs page loads nothing from elsewhere.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    "TAGS": [
        {"name": "tenants", "description": "The tenants the caller can manage."},
        {"name": "keys", "description": "API keys: the raw key is shown once, at creation."},
        {"name": "members", "description": "Members, roles and invitations."},
        {"name": "usage", "description": "Usage records and summaries."},
        {"name": "billing", "description": "The plan, its limits, and Stripe checkout and portal links."},
    ],
}

# --- billing (Stripe) ------------------------------------------------------------------
# Empty = billing not configured: operators assign plans in the admin. STRIPE_API_BASE points
# stripe-python at another API host (a local fake in tests).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
