from django.core.management.base import BaseCommand

from billing import credits, stripe_api


class Command(BaseCommand):
    help = ("Auto top-up: resend charges whose answer was lost (same idempotency key), then charge every "
            "tenant below its threshold once per crossing. Run it every minute or so (cron).")

    def handle(self, *args, **options):
        if not stripe_api.is_configured():
            self.stdout.write("Billing is not configured (STRIPE_SECRET_KEY): nothing to charge.")
            return
        resent = credits.resend_pending_top_ups()
        if resent:
            self.stdout.write(f"resent {resent} unanswered top-up charge(s)")
        for attempt in credits.top_up_low_balances():
            self.stdout.write(f"tenant {attempt.tenant_id}: top-up of ${attempt.amount} {attempt.status}")
