from django.contrib import admin

from caching.models import CacheDay, KeyCache, TenantCache


@admin.register(TenantCache)
class TenantCacheAdmin(admin.ModelAdmin):
    list_display = ["tenant", "enabled", "ttl_seconds", "any_temperature", "semantic", "updated_at"]
    list_filter = ["enabled", "semantic", "any_temperature"]
    search_fields = ["tenant__slug"]
    autocomplete_fields = ["tenant"]


@admin.register(KeyCache)
class KeyCacheAdmin(admin.ModelAdmin):
    list_display = ["api_key", "enabled", "updated_at"]
    search_fields = ["api_key__name", "api_key__tenant__slug"]
    raw_id_fields = ["api_key"]


@admin.register(CacheDay)
class CacheDayAdmin(admin.ModelAdmin):
    """What the cache did per tenant and day: history, never edited."""

    list_display = ["day", "tenant", "hits", "misses", "saved"]
    search_fields = ["tenant__slug"]
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
