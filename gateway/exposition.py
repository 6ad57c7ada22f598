"""GET /metrics: every metric of this process, or of all workers of ``manage.py serve``.

Who may read it: with METRICS_TOKEN set, a request carrying "Authorization: Bearer <token>";
without, only a client at a loopback or private address (as gateway/proxies.py reads it: behind
a proxy, set TRUSTED_PROXIES or the proxy's own address is the client). A request without the token
gets 401; without a token configured, a client from elsewhere gets 404.

With PROMETHEUS_MULTIPROC_DIR set (serve sets it to a fresh directory per start), each worker
writes its values to files there and the one answering adds them all up. Video jobs by state
are read from the database at scrape time: the same fleet-wide numbers from every node.
"""

import hmac
import ipaddress

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily

from gateway.proxies import client_address
from media.models import VideoJob
from providers.blocking import run_blocking


class VideoJobs:
    """tollgate_video_jobs{state}: video jobs in the database, by state."""

    def collect(self):
        family = GaugeMetricFamily("tollgate_video_jobs", "Video jobs in the database, by state.", labels=["state"])
        for row in VideoJob.objects.values("status").annotate(jobs=Count("pk")).order_by("status"):
            family.add_metric([row["status"]], row["jobs"])
        yield family


def may_read(request) -> bool:
    if settings.METRICS_TOKEN:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                  settings.METRICS_TOKEN.encode())
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return address.is_loopback or (address.is_private and not address.is_unspecified)


def is_multiprocess() -> bool:
    """Whether this process writes its values to PROMETHEUS_MULTIPROC_DIR (decided when
    prometheus_client was first imported)."""
    return values.ValueClass is not values.MutexValue


def exposition() -> bytes:
    registry = REGISTRY
    if is_multiprocess():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    jobs = CollectorRegistry()
    jobs.register(VideoJobs())
    return generate_latest(registry) + generate_latest(jobs)


async def metrics(request):
    if not may_read(request):
        response = HttpResponse("Not found.\n", status=404, content_type="text/plain; charset=utf-8")
        if settings.METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(await run_blocking(exposition), content_type=CONTENT_TYPE_LATEST)
