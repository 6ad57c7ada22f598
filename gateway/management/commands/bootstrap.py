from django.core.management.base import BaseCommand

from billing.models import Plan
from billing.plans import seed_plans
from gateway.models import Tenant
from gateway.tenants import create_tenant
from providers.catalog_seed import read_catalog, seed_catalog


class Command(BaseCommand):
    help = ("Load providers/catalog.yaml and the default plans, create the demo tenant, and enable every "
            "provider whose <SLUG>_API_KEY is set. Safe to run again: it only adds what is missing.")

    def handle(self, *args, **options):
        notes = seed_catalog(read_catalog()) + seed_plans()
        if not Tenant.objects.filter(slug="demo").exists():
            create_tenant("demo", name="Demo", plan=Plan.objects.get(slug="free"))
            notes.append("added tenant demo (plan free)")
        for note in notes:
            self.stdout.write(f"  {note}")
        self.stdout.write(self.style.SUCCESS("bootstrap: catalog, plans and demo tenant are in place."))
