from django.contrib import admin

from usage.models import DailyUsage, MonthlySpend, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: shown, filtered and searched, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "api_key", "model", "provider", "input_tokens", "output_tokens",
                    "cost", "latency_ms", "ttft_ms", "outcome", "ending", "error_type"]
    list_filter = ["outcome", "ending", "capability", "provider", "streamed", "usage_estimated"]
    search_fields = ["request_id", "tenant__slug", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "api_key"]


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "tenant", "model", "requests", "errors", "error_rate", "input_tokens", "output_tokens",
                    "cost"]

    @admin.display(description="error rate")
    def error_rate(self, row):
        return f"{row.errors / row.requests:.0%}" if row.requests else "—"
    list_filter = ["day", "model"]
    search_fields = ["tenant__slug", "model"]
    date_hierarchy = "day"


@admin.register(MonthlySpend)
class MonthlySpendAdmin(ReadOnlyAdmin):
    list_display = ["month", "tenant", "settled", "reserved"]
    search_fields = ["tenant__slug"]
