# The answer cache (issue 19): tenant and key settings, entries kept without Redis, daily counts.

import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('gateway', '0004_lease'),
    ]

    operations = [
        migrations.CreateModel(
            name='KeyCache',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField()),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('api_key', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='cache_setting', to='gateway.apikey')),
            ],
        ),
        migrations.CreateModel(
            name='TenantCache',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField(default=False, help_text='Answer repeated requests from the cache.')),
                ('ttl_seconds', models.PositiveIntegerField(default=3600, help_text='How long a cached answer is served (x-tollgate-cache-ttl overrides).')),
                ('any_temperature', models.BooleanField(default=False, help_text='Cache every request, not only deterministic ones (temperature 0 or a seed).')),
                ('semantic', models.BooleanField(default=False, help_text='Also serve answers to requests whose last user message means nearly the same.')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='cache_settings', to='gateway.tenant')),
            ],
        ),
        migrations.CreateModel(
            name='CacheDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField(default=django.utils.timezone.now)),
                ('hits', models.PositiveBigIntegerField(default=0)),
                ('misses', models.PositiveBigIntegerField(default=0)),
                ('saved', models.DecimalField(decimal_places=10, default=Decimal('0'), max_digits=20)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='gateway.tenant')),
            ],
            options={
                'ordering': ['-day'],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'day'), name='one_cache_day_per_tenant')],
            },
        ),
        migrations.CreateModel(
            name='CacheEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(max_length=64)),
                ('answer', models.TextField(help_text='The answer as JSON (caching/answers.py).')),
                ('size', models.PositiveIntegerField(help_text='Bytes of the answer.')),
                ('stored_at', models.FloatField()),
                ('expires_at', models.FloatField()),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='gateway.tenant')),
            ],
            options={
                'verbose_name_plural': 'cache entries',
                'indexes': [models.Index(fields=['tenant', 'stored_at'], name='caching_cac_tenant__043910_idx'), models.Index(fields=['expires_at'], name='caching_cac_expires_21b9bd_idx')],
                'constraints': [models.UniqueConstraint(fields=('tenant', 'digest'), name='one_cache_entry_per_digest')],
            },
        ),
    ]
