"""Tollgate settings: one module, every knob read from the environment.

django-environ does the typing; a value that does not parse stops the process at start
with ImproperlyConfigured naming the variable, rather than failing on the first request.
"""

import ipaddress
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from gateway.secret_files import read_or_create_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("TOLLGATE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()


def networks(name: str) -> list:
    """A comma-separated list of addresses or CIDRs, parsed (a typo stops the process)."""
    try:
        items = [item.strip() for item in env.list(name, default=[])]
        return [ipaddress.ip_network(item, strict=False) for item in items if item]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}. Give addresses or CIDRs, e.g. 10.0.0.0/8,::1.") from None


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
FORMATTERS = {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}}
if LOG_FORMAT == "json":
    from pythonjsonlogger.core import RESERVED_ATTRS

    FORMATTERS = {"json": {"()": "pythonjsonlogger.json.JsonFormatter", "timestamp": "time",
                           "fmt": "%(levelname)s %(name)s %(message)s",
                           "rename_fields": {"levelname": "level", "name": "logger"},
                           "reserved_attrs": [*RESERVED_ATTRS, "color_message"]}}  # uvicorn's, with ANSI codes
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": FORMATTERS,
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # httpx logs every upstream request at INFO: a line per API call, with its URL.
    "loggers": {"httpx": {"level": "WARNING"},
                "tollgate.requests": {"level": "INFO" if env.bool("LOG_REQUESTS", default=True) else "WARNING"}},
}

# --- the /v1 gateway -------------------------------------------------------------------
# Largest request body /v1 accepts; larger bodies get 413 before they are parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# POST /v1/completions (OpenAI's legacy completions) served by a chat model, the prompt as one user
# message; off, the endpoint answers 404 as OpenAI does for a chat model.
LEGACY_COMPLETIONS_AS_CHAT = env.bool("LEGACY_COMPLETIONS_AS_CHAT", default=True)
# The model POST /v1/moderations uses when the request names none (as OpenAI's API does).
MODERATION_DEFAULT_MODEL = env.str("MODERATION_DEFAULT_MODEL", default="openai/omni-moderation-latest")
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# Largest body anywhere else (pages, admin, /api/, Stripe webhooks): counted while it is read
# (handlers.BodyLimit), a larger one is a 413 before Django spools it.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=2 * 1024 * 1024)
# How long an authenticated key, its tenant and plan are served from process memory.
# A key revoked elsewhere stops working within this many seconds (at once in this process).
KEY_CACHE_SECONDS = env.float("KEY_CACHE_SECONDS", default=5.0)
# The answer cache (caching/, gateway/serving/cache.py): in Redis with REDIS_URL, else the database.
# A tenant's entries beyond CACHE_MAX_ENTRIES_PER_TENANT push out its oldest; an answer larger
# than CACHE_MAX_ENTRY_BYTES is not kept; x-tollgate-cache-ttl is capped at CACHE_MAX_TTL_SECONDS.
CACHE_MAX_ENTRIES_PER_TENANT = env.int("CACHE_MAX_ENTRIES_PER_TENANT", default=10_000)
CACHE_MAX_ENTRY_BYTES = env.int("CACHE_MAX_ENTRY_BYTES", default=1024 * 1024)
CACHE_MAX_TTL_SECONDS = env.int("CACHE_MAX_TTL_SECONDS", default=30 * 24 * 3600)
# Answers each process keeps a copy of (the latest kept or found), so a repeated hit costs no round trip.
CACHE_LOCAL_BYTES = env.int("CACHE_LOCAL_BYTES", default=32 * 1024 * 1024)
# The semantic cache: the operator's embedding model (its cost is the operator's, on /metrics),
# the cosine similarity a match needs, and the in-process index's bounds (per tenant, tenants).
CACHE_SEMANTIC_MODEL = env.str("CACHE_SEMANTIC_MODEL", default="openai/text-embedding-3-small")
CACHE_SEMANTIC_THRESHOLD = env.float("CACHE_SEMANTIC_THRESHOLD", default=0.95)
CACHE_SEMANTIC_MAX_ENTRIES = env.int("CACHE_SEMANTIC_MAX_ENTRIES", default=2000)
CACHE_SEMANTIC_MAX_TENANTS = env.int("CACHE_SEMANTIC_MAX_TENANTS", default=1000)
# Catalog (providers, models, prices, credentials) cache lifetime.
CATALOG_CACHE_SECONDS = env.float("CATALOG_CACHE_SECONDS", default=10.0)
# "aiohttp" (httpx API over aiohttp's pool, faster under concurrency) or "httpx".
HTTPX_TRANSPORT = env.str("HTTPX_TRANSPORT", default="aiohttp")
# Open upstream connections per process; each in-flight stream holds one.
UPSTREAM_MAX_CONNECTIONS = env.int("UPSTREAM_MAX_CONNECTIONS", default=4096)
# A reservation not settled after this long is released by the ledger writer's sweeper (its
# process died); longer than any provider's total timeout.
RESERVATION_TTL_SECONDS = env.int("RESERVATION_TTL_SECONDS", default=1800)
# A request in flight notes what it has produced on its reservation this often; the ledger
# writer sweeps reservations not heard of for RESERVATION_TTL_SECONDS this often (usage/recovery.py).
RESERVATION_CHECKPOINT_SECONDS = env.float("RESERVATION_CHECKPOINT_SECONDS", default=5.0)
RESERVATION_SWEEP_SECONDS = env.float("RESERVATION_SWEEP_SECONDS", default=60.0)
# Budget leases (usage/leases.py): each process reserves requests in memory against a slice of a
# tenant's remaining monthly budget, taken with one conditional UPDATE. A slice is at most
# BUDGET_LEASE_SLICE (USD) and a tenth of what the cap has left (one request's worth near it).
# A lease not renewed (every RESERVATION_SWEEP_SECONDS) for BUDGET_LEASE_TTL_SECONDS belongs to a
# dead process and is given back by the sweeper; keep it well above the sweep interval. 0 idle
# seconds: a lease is given back as soon as its last request settles (more: kept that long for
# the next request, which then makes no database round trip, while the ledger shows it reserved).
try:
    BUDGET_LEASE_SLICE = Decimal(env.str("BUDGET_LEASE_SLICE", default="1.00"))
except InvalidOperation:
    raise ImproperlyConfigured("BUDGET_LEASE_SLICE must be an amount of USD, e.g. 1.00.") from None
BUDGET_LEASE_TTL_SECONDS = env.int("BUDGET_LEASE_TTL_SECONDS", default=RESERVATION_TTL_SECONDS)
BUDGET_LEASE_IDLE_SECONDS = env.float("BUDGET_LEASE_IDLE_SECONDS", default=0.0)
if not BUDGET_LEASE_SLICE > 0 or BUDGET_LEASE_IDLE_SECONDS < 0:
    raise ImproperlyConfigured("BUDGET_LEASE_SLICE must be a positive amount of USD (e.g. 1.00), and "
                               "BUDGET_LEASE_IDLE_SECONDS 0 or more.")
# Circuit breaker per deployment: this many failures within the window open it for the cool-down.
BREAKER_FAILURES = env.int("BREAKER_FAILURES", default=5)
BREAKER_WINDOW_SECONDS = env.float("BREAKER_WINDOW_SECONDS", default=60.0)
BREAKER_COOLDOWN_SECONDS = env.float("BREAKER_COOLDOWN_SECONDS", default=30.0)
# Retries of one upstream call before the first byte reached the client.
UPSTREAM_MAX_RETRIES = env.int("UPSTREAM_MAX_RETRIES", default=2)

# --- production: `manage.py serve`, `manage.py run_background`, probes, metrics (README "Production") ---
# serve: HOST (127.0.0.1: set 0.0.0.0 behind a load balancer or in a container), PORT, WORKERS
# (0: one per core). On SIGTERM each worker stops accepting and gives requests and streams in
# flight this long to finish before they are cut (and settled as the client's leaving).
SERVE_HOST = env.str("HOST", default="127.0.0.1")
SERVE_PORT = env.int("PORT", default=8000)
WORKERS = env.int("WORKERS", default=0)
SHUTDOWN_GRACE_SECONDS = env.float("SHUTDOWN_GRACE_SECONDS", default=30.0)
# GET /metrics: with METRICS_TOKEN, only with "Authorization: Bearer <token>"; without, only from
# loopback and private addresses (the client address as gateway/proxies.py reads it).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# GET /readyz: each check's time limit, and the most jobs the ledger writer may have waiting.
READY_TIMEOUT_SECONDS = env.float("READY_TIMEOUT_SECONDS", default=2.0)
READY_MAX_WRITER_QUEUE = env.int("READY_MAX_WRITER_QUEUE", default=1000)
# run_background's periodic jobs: how often each runs across the fleet (0: never), and how often
# a process looks for one that is due (gateway/background.py).
GRACE_PERIOD_CHECK_SECONDS = env.float("GRACE_PERIOD_CHECK_SECONDS", default=3600.0)
OVERAGE_REPORT_SECONDS = env.float("OVERAGE_REPORT_SECONDS", default=900.0)
RESPONSE_PURGE_SECONDS = env.float("RESPONSE_PURGE_SECONDS", default=3600.0)
PROVIDER_CHECK_SECONDS = env.float("PROVIDER_CHECK_SECONDS", default=600.0)
# Prepaid credits (billing/credit_debits.py): settled usage becomes a usage entry of the credit
# ledger every CREDIT_DEBIT_SECONDS; accounts below their auto top-up threshold are charged, and
# charges whose answer was lost resent, every CREDIT_TOP_UP_SECONDS. (What a tenant may spend is
# exact at every request whatever these are: admission holds on the credits themselves.)
CREDIT_DEBIT_SECONDS = env.float("CREDIT_DEBIT_SECONDS", default=3600.0)
CREDIT_TOP_UP_SECONDS = env.float("CREDIT_TOP_UP_SECONDS", default=60.0)
BACKGROUND_TICK_SECONDS = env.float("BACKGROUND_TICK_SECONDS", default=5.0)
# Spend alerts (billing/alerts.py, billing/alert_delivery.py): budgets are checked against each
# tenant's thresholds, and due mails and webhooks sent, every ALERT_CHECK_SECONDS; a failed
# delivery waits ALERT_RETRY_BASE_SECONDS, doubled after each failure (at most
# ALERT_RETRY_MAX_SECONDS), and gives up after ALERT_MAX_ATTEMPTS attempts.
ALERT_CHECK_SECONDS = env.float("ALERT_CHECK_SECONDS", default=30.0)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
ALERT_RETRY_BASE_SECONDS = env.float("ALERT_RETRY_BASE_SECONDS", default=60.0)
ALERT_RETRY_MAX_SECONDS = env.float("ALERT_RETRY_MAX_SECONDS", default=6 * 3600.0)
ALERT_MAX_ATTEMPTS = env.int("ALERT_MAX_ATTEMPTS", default=12)
if ALERT_WEBHOOK_TIMEOUT_SECONDS <= 0 or ALERT_RETRY_BASE_SECONDS <= 0 or ALERT_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("ALERT_WEBHOOK_TIMEOUT_SECONDS and ALERT_RETRY_BASE_SECONDS must be more than 0, "
                               "and ALERT_MAX_ATTEMPTS at least 1.")

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

# --- video jobs (manage.py run_worker) ------------------------------------------------------
# A job not finished by then fails as timed out and is refunded. Kept under
# RESERVATION_TTL_SECONDS, so the job's spend reservation is still held when it settles.
VIDEO_JOB_TIMEOUT_SECONDS = env.int("VIDEO_JOB_TIMEOUT_SECONDS", default=1500)
# A worker's claim on a job; renewed while it works on it, so a worker that dies leaves its
# jobs to another within this long.
VIDEO_WORKER_LEASE_SECONDS = env.float("VIDEO_WORKER_LEASE_SECONDS", default=60.0)
VIDEO_WORKER_CONCURRENCY = env.int("VIDEO_WORKER_CONCURRENCY", default=32)
VIDEO_WORKER_IDLE_SECONDS = env.float("VIDEO_WORKER_IDLE_SECONDS", default=1.0)  # between looks for due jobs
# Polls of a provider start this often and back off by half again each time, up to the max.
VIDEO_POLL_SECONDS = env.float("VIDEO_POLL_SECONDS", default=3.0)
VIDEO_POLL_MAX_SECONDS = env.float("VIDEO_POLL_MAX_SECONDS", default=30.0)
# Steps (submit, poll, download) failing in a row with a transient error before the job fails, refunded.
VIDEO_MAX_FAILURES = env.int("VIDEO_MAX_FAILURES", default=8)
VIDEO_STREAM_POLL_SECONDS = env.float("VIDEO_STREAM_POLL_SECONDS", default=0.5)  # stream=true progress checks

# --- fetching URLs a client gave us (providers/outbound.py) -----------------------------
# https only, public addresses only, checked on every redirect. Hosts (``name`` or ``name:port``)
# the operator trusts, e.g. its own media bucket, may be private and plain http; networks
# (CIDRs) may be private.
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
OUTBOUND_MAX_BYTES = env.int("OUTBOUND_MAX_BYTES", default=20 * 1024 * 1024)
OUTBOUND_TIMEOUT_SECONDS = env.float("OUTBOUND_TIMEOUT_SECONDS", default=20.0)  # the whole fetch, redirects included
OUTBOUND_MAX_REDIRECTS = env.int("OUTBOUND_MAX_REDIRECTS", default=3)

# --- tools the gateway runs itself -------------------------------------------------------
# web_fetch (providers/web_fetch.py): a page's text handed to the model is cut at this many characters.
WEB_FETCH_MAX_CHARS = env.int("WEB_FETCH_MAX_CHARS", default=20_000)
# code_interpreter (providers/code_executor.py): the operator's Python executor, reached with this
# key as a Bearer token; never the gateway's own process. Unset: the tool is unavailable.
# `manage.py run_executor` is a reference executor for trusted environments only (README).
PYTHON_EXECUTOR_URL = env.str("PYTHON_EXECUTOR_URL", default="")
PYTHON_EXECUTOR_KEY = env.str("PYTHON_EXECUTOR_KEY", default="")
if PYTHON_EXECUTOR_URL and not PYTHON_EXECUTOR_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PYTHON_EXECUTOR_URL must be an http(s) URL, not {PYTHON_EXECUTOR_URL!r}.")
if PYTHON_EXECUTOR_URL and not PYTHON_EXECUTOR_KEY:
    raise ImproperlyConfigured("PYTHON_EXECUTOR_URL is set but PYTHON_EXECUTOR_KEY is not; set the executor's key.")
# The tool loop (gateway/serving/tool_loop.py): at most this many rounds of the gateway's tools per
# request (the model is then called once more, to answer), at most this many tool calls in all, and
# each snippet's time limit. Admission reserves for all of it.
TOOL_LOOP_MAX_ROUNDS = env.int("TOOL_LOOP_MAX_ROUNDS", default=4)
TOOL_LOOP_MAX_CALLS = env.int("TOOL_LOOP_MAX_CALLS", default=8)
CODE_INTERPRETER_TIMEOUT_SECONDS = env.float("CODE_INTERPRETER_TIMEOUT_SECONDS", default=30.0)
if TOOL_LOOP_MAX_ROUNDS < 1 or TOOL_LOOP_MAX_CALLS < 1 or CODE_INTERPRETER_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("TOOL_LOOP_MAX_ROUNDS and TOOL_LOOP_MAX_CALLS must be at least 1, and "
                               "CODE_INTERPRETER_TIMEOUT_SECONDS more than 0.")

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
