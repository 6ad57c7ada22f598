from django import forms
from django.contrib import admin

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


@admin.register(Model)
class ModelAdmin(CatalogAdmin):
    inlines = [DeploymentInline]
    list_display = ["public_id", "provider", "upstream_name", "capability", "group", "input_price", "output_price",
                    "cached_input_price", "context_window", "enabled"]
    list_filter = ["capability", "provider", "group", "enabled"]
    search_fields = ["public_id", "upstream_name"]
    list_editable = ["enabled"]
