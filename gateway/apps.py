from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from billing import subscriptions
        from gateway.api_keys import forget_keys

        # A plan changed by billing (webhook, admin) applies at once in this process.
        if forget_keys not in subscriptions.after_change:
            subscriptions.after_change.append(forget_keys)
