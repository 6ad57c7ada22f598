# A request answered from the gateway's cache ends `cache_hit` (issue 19).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0008_tool_usage'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usagerecord',
            name='ending',
            field=models.CharField(choices=[('completed', 'Completed'), ('client_gone', 'Client disconnected'), ('upstream_error', 'Upstream error'), ('timeout', 'Timeout'), ('interrupted', 'Interrupted (the gateway process died)'), ('cache_hit', 'Answered from the cache')], max_length=16),
        ),
    ]
