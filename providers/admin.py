from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from providers import breaker
from providers.adapters.openai.azure import DEFAULT_API_VERSION
from providers.catalog_seed import add_azure_deployment
from providers.catalog_snapshot import forget_catalog
from providers.health import chat_deployments, probe_all
from providers.models import Credential, Deployment, Model, Provider


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
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, without the warning

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and obj.wire_format == "azure_openai":
            form.base_fields["base_url"].help_text = (
                "The resource's endpoint, as Azure's 'Keys and Endpoint' page shows it: "
                "https://YOUR-RESOURCE.openai.azure.com (one provider per resource; its credentials are the "
                "resource's keys, or 'Bearer ' and a Microsoft Entra ID token).")
            form.base_fields["quirks"].help_text = (
                f'{{"api_version": "{DEFAULT_API_VERSION}"}}: the api-version sent; "api_versions": '
                '{"DEPLOYMENT": "VERSION"} for deployments called with another; "auth": "bearer" when every '
                "credential is an Entra ID token. Each deployment is a model whose upstream name is the "
                "deployment's name.")
        return form


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


class AzureDeploymentForm(forms.Form):
    """What the Azure portal shows for a deployment, and how the gateway lists and prices it."""

    endpoint = forms.URLField(
        max_length=300, assume_scheme="https", help_text="The resource's endpoint, from its 'Keys and Endpoint' page: "
                                  "https://YOUR-RESOURCE.openai.azure.com. One provider row per resource.")
    deployment = forms.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, label="Deployment name",
        help_text="The deployment's name in Azure AI Foundry (not the model's, unless named after it). "
                  "Sent in the URL: .../openai/deployments/NAME/chat/completions.")
    api_version = forms.RegexField(
        r"^\d{4}-\d{2}-\d{2}(-preview)?$", initial=DEFAULT_API_VERSION, label="API version",
        help_text="The api-version this deployment is called with, e.g. 2024-10-21 (GA) or 2025-04-01-preview. "
                  "The resource's own unless another deployment set it first; then kept for this deployment alone.")
    api_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, label="Key",
        help_text="KEY 1 or KEY 2 of the resource (sent as the api-key header), or 'Bearer ' and a Microsoft Entra "
                  "ID token. Leave empty to keep the key stored for this endpoint.")
    serves = forms.ModelChoiceField(
        Model.objects.all(), required=False, label="Also serves",
        help_text="An existing model this deployment serves too (e.g. openai/gpt-4o): it becomes one more deployment "
                  "of that model, sharing its traffic (priority 0, weight 1; change them in the model's "
                  "Deployments). Leave empty to list it as a model of its own.")
    public_id = forms.CharField(
        max_length=200, required=False, label="Public model id",
        help_text="A model of its own: the id tenants call. Default azure/DEPLOYMENT-NAME.")
    priced_like = forms.ModelChoiceField(
        Model.objects.all(), required=False,
        help_text="A model of its own: copy capability, group, context window, prices and options from this model "
                  "(e.g. openai/gpt-4o-mini for a gpt-4o-mini deployment) ...")
    input_price = forms.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False,
                                     help_text="... or give them: USD per million input tokens,")
    output_price = forms.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False,
                                      help_text="USD per million output tokens,")
    cached_input_price = forms.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False,
                                            help_text="USD per million cached input tokens (overrides 'priced like').")
    group = forms.CharField(max_length=32, required=False,
                            help_text="The model group plans allow (small, frontier); default: priced like's.")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("serves") or not cleaned.get("deployment"):
            return cleaned
        public_id = cleaned["public_id"] = cleaned.get("public_id") or f"azure/{cleaned['deployment']}"
        if Model.objects.filter(public_id=public_id).exists():
            self.add_error("public_id", f"'{public_id}' is taken: choose another public id, or pick it under "
                                        f"'Also serves' to add this deployment to it.")
        if cleaned.get("priced_like") is None and (cleaned.get("input_price") is None
                                                   or cleaned.get("output_price") is None):
            self.add_error("priced_like", "Give the input and output prices, or a model it is priced like: a "
                                          "deployment served at no price would be billed nothing.")
        return cleaned

    def catalog_fields(self) -> dict:
        data = self.cleaned_data
        return {"endpoint": data["endpoint"], "deployment": data["deployment"], "api_version": data["api_version"],
                "api_key": data["api_key"], "serves": data["serves"], "public_id": data["public_id"],
                "priced_like": data["priced_like"], "group": data["group"],
                "prices": {name: data[name] for name in ("input_price", "output_price", "cached_input_price")}}


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

    def get_urls(self):
        add_azure = path("add-azure-deployment/", self.admin_site.admin_view(self.add_azure_deployment_view),
                         name="providers_model_add_azure")
        return [add_azure, *super().get_urls()]

    def add_azure_deployment_view(self, request):
        """An Azure OpenAI deployment by endpoint, deployment name and api-version (linked from the list)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AzureDeploymentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                added = add_azure_deployment(**form.catalog_fields())
            except ValidationError as exc:
                form.add_error("api_key", exc)
            else:
                forget_catalog()
                model = added if isinstance(added, Model) else added.model
                self.message_user(request, f"Azure deployment '{form.cleaned_data['deployment']}' serves "
                                           f"{model.public_id} (provider {added.provider.slug}).", messages.SUCCESS)
                return redirect(reverse("admin:providers_model_change", args=[model.pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Add an Azure OpenAI deployment"}
        return TemplateResponse(request, "admin/providers/model/add_azure_deployment.html", context)

    @admin.display(description="breaker")
    def cooling_down(self, model):
        """Open circuit breakers of this process for the model's deployments."""
        left = {key: seconds for key, seconds in breaker.cooldowns().items()
                if key == breaker.key_of(model.provider.slug, model.upstream_name)
                or any(key == breaker.key_of(d.provider.slug, d.upstream_name) for d in model.deployments.all())}
        return ", ".join(f"{key} open {seconds:.0f}s" for key, seconds in left.items()) or "closed"
