from django.core.management.base import BaseCommand

from conversations.store import purge_expired_responses


class Command(BaseCommand):
    help = ("Delete stored /v1/responses past their plan's retention (response_retention_days). "
            "Run it periodically (e.g. daily from cron); expired responses are already invisible to the API.")

    def handle(self, *args, **options):
        self.stdout.write(f"deleted {purge_expired_responses()} expired stored responses")
