# The answer cache on the plan (issue 19): whether tenants may cache answers, also semantically,
# and the price of a cached answer. Pro and Enterprise offer the cache, Enterprise the semantic
# one too, as billing/plans.yaml seeds them.

from decimal import Decimal

from django.db import migrations, models


def offer_on_paid_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(slug__in=["pro", "enterprise"]).update(cache_enabled=True)
    Plan.objects.filter(slug="enterprise").update(semantic_cache_enabled=True)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0007_tool_prices'),
    ]

    operations = [
        migrations.AddField(
            model_name='plan',
            name='cache_enabled',
            field=models.BooleanField(default=False, help_text="Tenants may answer repeated requests from the gateway's cache (exact matches)."),
        ),
        migrations.AddField(
            model_name='plan',
            name='semantic_cache_enabled',
            field=models.BooleanField(default=False, help_text='Tenants may also match requests that mean nearly the same (semantic cache).'),
        ),
        migrations.AddField(
            model_name='plan',
            name='cache_hit_price',
            field=models.DecimalField(decimal_places=6, default=Decimal('0'), help_text='USD billed per request answered from the cache, whatever its size (0 = free).', max_digits=10),
        ),
        migrations.RunPython(offer_on_paid_plans, migrations.RunPython.noop),
    ]
