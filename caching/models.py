"""The answer cache's rows: who caches (a tenant's settings, a key's own switch), what is cached
when there is no Redis (CacheEntry), and what the cache did per tenant and day (CacheDay).

Never shared between tenants: every row belongs to one, and an entry is found by its tenant and
the digest of the request (gateway/serving/cache.py), never by the digest alone.
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

DEFAULT_TTL_SECONDS = 3600


class TenantCache(models.Model):
    """A tenant's cache settings (no row: caching off). The plan must offer the cache
    (Plan.cache_enabled, Plan.semantic_cache_enabled) for them to take effect."""

    tenant = models.OneToOneField("gateway.Tenant", on_delete=models.CASCADE, related_name="cache_settings")
    enabled = models.BooleanField(default=False, help_text="Answer repeated requests from the cache.")
    ttl_seconds = models.PositiveIntegerField(
        default=DEFAULT_TTL_SECONDS, help_text="How long a cached answer is served (x-tollgate-cache-ttl overrides).")
    any_temperature = models.BooleanField(
        default=False, help_text="Cache every request, not only deterministic ones (temperature 0 or a seed).")
    semantic = models.BooleanField(
        default=False, help_text="Also serve answers to requests whose last user message means nearly the same.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: {'on' if self.enabled else 'off'}"


class KeyCache(models.Model):
    """One API key's own cache switch (no row: as its tenant)."""

    api_key = models.OneToOneField("gateway.ApiKey", on_delete=models.CASCADE, related_name="cache_setting")
    enabled = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"key {self.api_key_id}: {'on' if self.enabled else 'off'}"


class CacheEntry(models.Model):
    """A cached answer, where there is no Redis (REDIS_URL unset). Times are epoch seconds, as
    the store's clock (caching/store.py) gives them."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    answer = models.TextField(help_text="The answer as JSON (caching/answers.py).")
    size = models.PositiveIntegerField(help_text="Bytes of the answer.")
    stored_at = models.FloatField()
    expires_at = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "digest"], name="one_cache_entry_per_digest")]
        indexes = [models.Index(fields=["tenant", "stored_at"]), models.Index(fields=["expires_at"])]
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.digest[:12]}"


class CacheDay(models.Model):
    """Per tenant and day: requests the cache answered (hits), those it looked up and did not
    have (misses), and what the hits would have cost less what they were billed (saved)."""

    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(default=timezone.now)
    hits = models.PositiveBigIntegerField(default=0)
    misses = models.PositiveBigIntegerField(default=0)
    saved = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0"))

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="one_cache_day_per_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day}: {self.hits} hits, {self.misses} misses"
