from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0010_spend_budgets'),
    ]

    operations = [
        migrations.AddField(
            model_name='plan',
            name='tokens_per_minute',
            field=models.PositiveIntegerField(blank=True, help_text='Tokens (prompt and output) per minute per API key; empty = no limit. A key may set a lower one.', null=True),
        ),
        migrations.AddField(
            model_name='plan',
            name='max_concurrent_requests',
            field=models.PositiveIntegerField(blank=True, help_text='Requests in flight at once per API key (a stream until it ends); empty = no limit. A key may set a lower one.', null=True),
        ),
    ]
