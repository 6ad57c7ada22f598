from django.contrib import admin

from billing.models import (
    OverageReport,
    Plan,
    PlanChange,
    PlanChangeReason,
    StripeEvent,
    Subscription,
)
from billing.subscriptions import change_plan
from usage.admin import ReadOnlyAdmin


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "monthly_price", "requests_per_minute", "monthly_spend_limit", "max_keys",
                    "max_members", "grace_days", "allows_overage", "stripe_price_id"]
    search_fields = ["slug", "name", "stripe_price_id"]
    ordering = ["sort_order"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Operators assign plans here (the only way without Stripe); with Stripe, its webhooks
    overwrite what is set here on the tenant's next subscription event."""

    list_display = ["tenant", "plan", "status", "current_period_end", "cancel_at_period_end", "stripe_customer_id",
                    "updated_at"]
    list_filter = ["plan", "status", "cancel_at_period_end"]
    search_fields = ["tenant__slug", "stripe_customer_id", "stripe_subscription_id"]
    autocomplete_fields = ["tenant"]
    readonly_fields = ["stripe_subscription_id", "current_period_end", "cancel_at_period_end", "past_due_since"]

    def save_model(self, request, obj, form, change):
        # A plan change goes through change_plan(): audit row, and the key cache forgets the old plan.
        new_plan = obj.plan
        if change and "plan" in form.changed_data:
            obj.plan = form.initial_plan
            super().save_model(request, obj, form, change)
            change_plan(obj, new_plan, reason=PlanChangeReason.OPERATOR, actor=request.user,
                        detail="set in the admin")
        else:
            super().save_model(request, obj, form, change)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.initial_plan = obj.plan if obj is not None else None
        return form


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "from_plan", "to_plan", "reason", "stripe_event_id", "actor"]
    list_filter = ["reason", "to_plan"]
    search_fields = ["tenant__slug", "stripe_event_id"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["stripe_event_id", "type", "stripe_object_id", "created", "received_at", "livemode"]
    list_filter = ["type", "livemode"]
    search_fields = ["stripe_event_id", "stripe_object_id"]


@admin.register(OverageReport)
class OverageReportAdmin(ReadOnlyAdmin):
    list_display = ["identifier", "tenant", "month", "units", "total_units", "overage", "sent_at"]
    list_filter = ["month", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["tenant__slug", "identifier", "stripe_customer_id"]
