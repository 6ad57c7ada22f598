from django import forms
from django.contrib import admin

from billing.credits import adjust_credits
from billing.models import (
    AutoTopUp,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
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
    list_display = ["slug", "name", "monthly_price", "requests_per_minute", "tokens_per_minute",
                    "max_concurrent_requests", "monthly_spend_limit", "max_keys", "max_members", "grace_days",
                    "allows_overage", "prepaid", "stripe_price_id"]
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


class AdjustmentForm(forms.ModelForm):
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"size": 80}),
                             help_text="Required: why (kept with the entry, shown to the tenant).")

    class Meta:
        model = CreditEntry
        fields = ["tenant", "amount", "reason"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.kind = CreditEntryKind.ADJUSTMENT

    def clean_amount(self):
        if not self.cleaned_data["amount"]:
            raise forms.ValidationError("An adjustment of zero changes nothing.")
        return self.cleaned_data["amount"]


@admin.register(CreditEntry)
class CreditEntryAdmin(admin.ModelAdmin):
    """The credit ledger: read-only, except that an operator adds an adjustment (positive adds
    credits, negative removes them) with a reason, through billing.credits like every entry."""

    form = AdjustmentForm
    list_display = ["created_at", "tenant", "kind", "amount", "balance_after", "reason", "stripe_payment_intent_id",
                    "actor"]
    list_filter = ["kind"]
    search_fields = ["tenant__slug", "stripe_payment_intent_id", "stripe_checkout_session_id", "stripe_refund_id"]
    autocomplete_fields = ["tenant"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        entry = adjust_credits(obj.tenant_id, form.cleaned_data["amount"], reason=form.cleaned_data["reason"],
                               actor=request.user.get_username())
        # The admin goes on with ``obj`` (its message and log): make it the entry written.
        obj.__dict__.update({field.attname: getattr(entry, field.attname) for field in entry._meta.concrete_fields})
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "balance", "auto_top_up", "top_up_threshold", "top_up_amount", "card_label",
                    "top_up_stopped_reason", "updated_at"]
    list_filter = ["auto_top_up"]
    search_fields = ["tenant__slug"]


@admin.register(AutoTopUp)
class AutoTopUpAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "crossing", "amount", "status", "stripe_payment_intent_id", "failure"]
    list_filter = ["status"]
    search_fields = ["tenant__slug", "stripe_payment_intent_id", "idempotency_key"]
