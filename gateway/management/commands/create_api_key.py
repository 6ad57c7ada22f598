from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from gateway.api_keys import KeyLimitReached, issue_api_key
from gateway.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant. The raw key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug.")
        parser.add_argument("--name", required=True, help="A name to recognise the key by.")
        parser.add_argument("--expires-in-days", type=int, help="Expire the key after this many days.")
        parser.add_argument("--model", action="append", default=[], dest="models",
                            help="Limit the key to this model id or pattern (repeatable).")

    def handle(self, *args, tenant, name, expires_in_days, models, **options):
        try:
            tenant_row = Tenant.objects.select_related("subscription__plan").get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant '{tenant}'. Create it with 'manage.py create_tenant {tenant}'.") from None
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            issued = issue_api_key(tenant_row, name=name, expires_at=expires_at, allowed_models=models)
        except KeyLimitReached as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created key '{name}' for {tenant} ({issued.api_key.display_prefix}). "
                          "It is shown once; store it now:")
        self.stdout.write(issued.raw)
