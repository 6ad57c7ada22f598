from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GatewayConfig(AppConfig):
    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from billing import subscriptions
        from gateway.api_keys import forget_keys, revoke_keys_of_deleted_user

        # A deleted account's keys end with it: once created_by is NULL a key would read as an
        # operator's (acting as admin).
        pre_delete.connect(revoke_keys_of_deleted_user, sender=get_user_model(),
                           dispatch_uid="revoke_keys_of_deleted_user")

        # A plan changed by billing (webhook, admin) applies at once in this process.
        if forget_keys not in subscriptions.after_change:
            subscriptions.after_change.append(forget_keys)


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site (gateway.admin_site: the login is throttled)."""

    default = False  # not the "gateway" app's own config
    default_site = "gateway.admin_site.AdminSite"
