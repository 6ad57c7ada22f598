# The plan's prices of the gateway's own tools (issue 20): per page web_fetch reads, per second of
# code code_interpreter runs.

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0006_alter_plan_allowed_capabilities'),
    ]

    operations = [
        migrations.AddField(
            model_name='plan',
            name='web_fetch_price',
            field=models.DecimalField(decimal_places=6, default=Decimal('0.001'), help_text="USD per page the web_fetch tool reads (with the 'web_fetch' capability).", max_digits=10),
        ),
        migrations.AddField(
            model_name='plan',
            name='code_second_price',
            field=models.DecimalField(decimal_places=6, default=Decimal('0.0001'), help_text="USD per second of code the code_interpreter tool runs (with the 'code_interpreter' capability).", max_digits=10),
        ),
    ]
