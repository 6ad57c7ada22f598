from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.models import Plan
from gateway.tenants import TenantExists, create_tenant


class Command(BaseCommand):
    help = "Create a tenant with a subscription and, with --owner-email, its owner."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Tenant id: lowercase letters, digits and dashes.")
        parser.add_argument("--name", default="", help="Display name (defaults to the slug).")
        parser.add_argument("--plan", default="free", help="Plan slug (default: free).")
        parser.add_argument("--owner-email", help="Email of the owner; the user is created if new.")

    def handle(self, *args, slug, name, plan, owner_email, **options):
        try:
            plan_row = Plan.objects.get(slug=plan)
        except Plan.DoesNotExist:
            known = ", ".join(Plan.objects.values_list("slug", flat=True)) or "none: run 'manage.py bootstrap'"
            raise CommandError(f"No plan '{plan}'. Plans: {known}.") from None
        try:
            tenant = create_tenant(slug, name=name, plan=plan_row, owner_email=owner_email)
        except (TenantExists, ValidationError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
        owner = f", owner {owner_email}" if owner_email else ""
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} on plan {plan_row.name}{owner}."))
