from django import forms
from django.contrib import admin, messages

from providers import breaker
from providers.health import chat_deployments, probe_all
from providers.models import Credential, Deployment, Model, Provider
from providers.router import forget_catalog


class CredentialForm(forms.ModelForm):
    """The secret is write-only: typed in, encrypted, never shown again."""

    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                             help_text="Leave empty to keep the stored key.")

    class Meta:
        model = Credential
        fields = ["provider", "label", "enabled"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("secret"):
            self.add_error("secret", "Enter the provider's API key.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
        return super().save(commit)


class CatalogAdmin(admin.ModelAdmin):
    """Edits take effect in this process at once, elsewhere within CATALOG_CACHE_SECONDS."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_catalog()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_catalog()


class CredentialInline(admin.TabularInline):
    model = Credential
    form = CredentialForm
    extra = 0
    readonly_fields = ["hint", "created_at"]


@admin.register(Provider)
class ProviderAdmin(CatalogAdmin):
    list_display = ["slug", "name", "wire_format", "base_url", "enabled", "first_byte_timeout", "read_timeout"]
    list_filter = ["enabled", "wire_format"]
    search_fields = ["slug", "name"]
    inlines = [CredentialInline]


@admin.register(Credential)
class CredentialAdmin(CatalogAdmin):
    form = CredentialForm
    list_display = ["provider", "label", "hint", "enabled", "created_at"]
    list_filter = ["provider", "enabled"]
    readonly_fields = ["hint", "created_at"]


class DeploymentInline(admin.TabularInline):
    """More providers serving this model; the model's own provider is priority 0, weight 1."""

    model = Deployment
    extra = 0
    fields = ["provider", "upstream_name", "priority", "weight", "enabled"]


@admin.action(description="Probe the selected models (one tiny request per deployment)")
def probe_models(modeladmin, request, queryset):
    deployments = chat_deployments(public_ids=list(queryset.values_list("public_id", flat=True)))
    if not deployments:
        modeladmin.message_user(request, "None of them has a servable deployment (enabled, with a key).",
                                messages.WARNING)
        return
    for result in probe_all(deployments):
        modeladmin.message_user(request, result.line().strip(), messages.SUCCESS if result.ok else messages.ERROR)


@admin.register(Model)
class ModelAdmin(CatalogAdmin):
    inlines = [DeploymentInline]
    actions = [probe_models]
    list_display = ["public_id", "provider", "upstream_name", "capability", "group", "input_price", "output_price",
                    "cached_input_price", "context_window", "enabled", "cooling_down"]
    list_filter = ["capability", "provider", "group", "enabled"]
    search_fields = ["public_id", "upstream_name"]
    list_editable = ["enabled"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("provider").prefetch_related("deployments__provider")

    @admin.display(description="breaker")
    def cooling_down(self, model):
        """Open circuit breakers of this process for the model's deployments."""
        left = {key: seconds for key, seconds in breaker.cooldowns().items()
                if key == breaker.key_of(model.provider.slug, model.upstream_name)
                or any(key == breaker.key_of(d.provider.slug, d.upstream_name) for d in model.deployments.all())}
        return ", ".join(f"{key} open {seconds:.0f}s" for key, seconds in left.items()) or "closed"
