from django.core.management.base import BaseCommand

from billing.subscriptions import expire_grace_periods


class Command(BaseCommand):
    help = ("Tenants whose payment failed longer ago than their plan's grace_days drop to Free limits. "
            "Run it periodically (e.g. hourly from cron); invoice.paid restores the plan.")

    def handle(self, *args, **options):
        dropped = expire_grace_periods()
        for slug in dropped:
            self.stdout.write(f"{slug}: grace period over, now on Free")
        if not dropped:
            self.stdout.write("no grace period ended")
