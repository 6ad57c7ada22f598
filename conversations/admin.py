from django.contrib import admin

from conversations.models import StoredResponse
from usage.admin import ReadOnlyAdmin


@admin.register(StoredResponse)
class StoredResponseAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "tenant", "api_key", "model", "status", "expires_at"]
    list_filter = ["status"]
    search_fields = ["id", "tenant__slug", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "api_key"]
