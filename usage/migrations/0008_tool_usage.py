# The gateway's own tools on the usage record and the daily rollup (issue 20): pages the web_fetch
# tool read and seconds of code the code_interpreter tool ran.

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0007_budget_leases'),
    ]

    operations = [
        migrations.AddField(
            model_name='usagerecord',
            name='web_fetches',
            field=models.PositiveIntegerField(default=0, help_text='Pages the web_fetch tool read.'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='code_seconds',
            field=models.DecimalField(decimal_places=3, default=Decimal('0'), help_text='Seconds of code the code_interpreter tool ran.', max_digits=10),
        ),
        migrations.AddField(
            model_name='dailyusage',
            name='web_fetches',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dailyusage',
            name='code_seconds',
            field=models.DecimalField(decimal_places=3, default=Decimal('0'), max_digits=14),
        ),
    ]
