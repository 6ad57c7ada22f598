from django import forms
from django.contrib import admin, messages

from gateway.api_keys import forget_keys, revoke_api_key
from gateway.models import ApiKey, Membership, Tenant, TenantProviderKey


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "created_at"]
    search_fields = ["slug", "name"]
    list_filter = ["subscription__plan"]
    inlines = [MembershipInline]

    @admin.display(description="plan")
    def plan(self, tenant):
        subscription = getattr(tenant, "subscription", None)
        return subscription.plan.name if subscription else "—"


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["tenant", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["tenant__slug", "user__email", "user__username"]
    autocomplete_fields = ["tenant", "user"]


@admin.action(description="Revoke selected keys")
def revoke_keys(modeladmin, request, queryset):
    for api_key in queryset:
        revoke_api_key(api_key)
    modeladmin.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued by their tenant (dashboard or create_api_key), never typed in here."""

    list_display = ["name", "display_prefix", "tenant", "created_by", "created_at", "last_used_at", "expires_at",
                    "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "tenant"]
    search_fields = ["name", "prefix", "tenant__slug"]
    readonly_fields = ["tenant", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    fields = ["tenant", "name", "prefix", "created_by", "created_at", "last_used_at", "expires_at", "revoked_at",
              "allowed_models", "tokens_per_minute", "max_concurrent_requests"]
    actions = [revoke_keys]

    def has_add_permission(self, request):
        return False


class TenantProviderKeyForm(forms.ModelForm):
    """The tenant's key is write-only: typed in, encrypted, never shown again."""

    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                             help_text="Leave empty to keep the stored key.")

    class Meta:
        model = TenantProviderKey
        fields = ["tenant", "provider"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("secret"):
            self.add_error("secret", "Enter the tenant's key for this provider.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
        return super().save(commit)


@admin.register(TenantProviderKey)
class TenantProviderKeyAdmin(admin.ModelAdmin):
    """Changes apply at once in this process, elsewhere within KEY_CACHE_SECONDS."""

    form = TenantProviderKeyForm
    list_display = ["tenant", "provider", "hint", "created_at"]
    search_fields = ["tenant__slug", "provider"]
    readonly_fields = ["hint", "created_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_keys()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_keys()
