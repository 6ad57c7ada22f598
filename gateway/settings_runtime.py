"""The gateway's own knobs, read from the environment: what /v1 accepts, the answer cache,
upstream calls, reservations and budget leases, `manage.py serve` and the probes, run_background's
jobs, spend alerts, video jobs, fetching clients' URLs, and the tools the gateway runs itself.

Part of the one settings module: gateway/settings.py star-imports every name here, and Django
reads them from there (``settings.KEY_CACHE_SECONDS``); nothing imports this module directly.
A value that does not parse or fit stops the process at start (ImproperlyConfigured).
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from gateway.settings_env import env

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
# A tenant's entries beyond CACHE_MAX_ENTRIES_PER_TENANT or CACHE_MAX_BYTES_PER_TENANT push out its oldest; an answer larger
# than CACHE_MAX_ENTRY_BYTES is not kept; x-tollgate-cache-ttl is capped at CACHE_MAX_TTL_SECONDS.
CACHE_MAX_ENTRIES_PER_TENANT = env.int("CACHE_MAX_ENTRIES_PER_TENANT", default=10_000)
CACHE_MAX_ENTRY_BYTES = env.int("CACHE_MAX_ENTRY_BYTES", default=1024 * 1024)
CACHE_MAX_BYTES_PER_TENANT = env.int("CACHE_MAX_BYTES_PER_TENANT", default=64 * 1024 * 1024)
CACHE_MAX_TTL_SECONDS = env.int("CACHE_MAX_TTL_SECONDS", default=30 * 24 * 3600)
# Answers each process keeps a copy of (the latest kept or found), so a repeated hit costs no round
# trip; a copy is served this many seconds, then the store (shared by every process) is asked again.
CACHE_LOCAL_BYTES = env.int("CACHE_LOCAL_BYTES", default=32 * 1024 * 1024)
CACHE_LOCAL_SECONDS = env.float("CACHE_LOCAL_SECONDS", default=5.0)
# The semantic cache: the operator's embedding model (its cost is the operator's, on /metrics),
# the cosine similarity a match needs, and the in-process index's bounds (per tenant, tenants).
CACHE_SEMANTIC_MODEL = env.str("CACHE_SEMANTIC_MODEL", default="openai/text-embedding-3-small")
CACHE_SEMANTIC_THRESHOLD = env.float("CACHE_SEMANTIC_THRESHOLD", default=0.95)
CACHE_SEMANTIC_TIMEOUT_SECONDS = env.float("CACHE_SEMANTIC_TIMEOUT_SECONDS", default=2.0)  # the embedding call's
CACHE_SEMANTIC_MAX_ENTRIES = env.int("CACHE_SEMANTIC_MAX_ENTRIES", default=2000)
CACHE_SEMANTIC_MAX_TENANTS = env.int("CACHE_SEMANTIC_MAX_TENANTS", default=100)
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
# dead process and is given back by the sweeper; keep it well above the sweep interval. A lease far
# from the cap (its last grant a full slice) is kept BUDGET_LEASE_IDLE_SECONDS after its last
# request settles, for the next one, which then makes no database round trip (the ledger shows it
# reserved meanwhile); near the cap, or with 0, it is given back as the last request settles.
try:
    BUDGET_LEASE_SLICE = Decimal(env.str("BUDGET_LEASE_SLICE", default="1.00"))
except InvalidOperation:
    raise ImproperlyConfigured("BUDGET_LEASE_SLICE must be an amount of USD, e.g. 1.00.") from None
BUDGET_LEASE_TTL_SECONDS = env.int("BUDGET_LEASE_TTL_SECONDS", default=RESERVATION_TTL_SECONDS)
BUDGET_LEASE_IDLE_SECONDS = env.float("BUDGET_LEASE_IDLE_SECONDS", default=5.0)
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
# Credits a plan includes each month (Plan.monthly_credits) are granted by this periodic job.
CREDIT_GRANT_SECONDS = env.float("CREDIT_GRANT_SECONDS", default=600.0)
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
