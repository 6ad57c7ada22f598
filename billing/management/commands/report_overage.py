from django.core.management.base import BaseCommand, CommandError

from billing import stripe_api
from billing.overage import report_overage


class Command(BaseCommand):
    help = ("Send overage beyond each plan's included spend to Stripe Billing Meters, exactly once. "
            "Run it periodically (e.g. every 15 minutes from cron).")

    def handle(self, *args, **options):
        if not stripe_api.is_configured():
            self.stdout.write("Billing is not configured (STRIPE_SECRET_KEY): nothing to report.")
            return
        run = report_overage()
        for report in run.sent:
            self.stdout.write(f"sent {report.identifier}: {report.units} units to {report.stripe_customer_id}")
        for mismatch in run.mismatches:
            self.stderr.write(f"reconcile: {mismatch}")
        if not run.sent and not run.failed:
            self.stdout.write("no new overage")
        if run.failed:
            raise CommandError("; ".join(f"{report.identifier} not sent: {why}" for report, why in run.failed)
                               + " (kept; the next run sends it again)")
