from django.contrib import admin

from billing.models import Plan, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "monthly_price", "requests_per_minute", "monthly_spend_limit", "max_keys",
                    "max_members", "stripe_price_id"]
    search_fields = ["slug", "name"]
    ordering = ["sort_order"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["tenant", "plan", "status", "current_period_end", "updated_at"]
    list_filter = ["plan", "status"]
    search_fields = ["tenant__slug"]
    autocomplete_fields = ["tenant"]
