from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('gateway', '0004_lease'),
    ]

    operations = [
        migrations.AddField(
            model_name='apikey',
            name='tokens_per_minute',
            field=models.PositiveIntegerField(blank=True, help_text="Tokens per minute for this key; empty = the plan's.", null=True),
        ),
        migrations.AddField(
            model_name='apikey',
            name='max_concurrent_requests',
            field=models.PositiveIntegerField(blank=True, help_text="Requests in flight at once for this key; empty = the plan's.", null=True),
        ),
    ]
