"""The typed env helpers of the settings (gateway/settings.py, gateway/settings_runtime.py).

django-environ types the plain values (``env.int``, ``env.bool``, ``env.list``, ...); the helpers
here parse what it cannot, and a value that does not parse stops the process at start with
ImproperlyConfigured naming the variable. Imported by the settings, so it uses nothing of
Django's but its exception.
"""

import ipaddress

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()


def networks(name: str) -> list:
    """A comma-separated list of addresses or CIDRs, parsed (a typo stops the process)."""
    try:
        items = [item.strip() for item in env.list(name, default=[])]
        return [ipaddress.ip_network(item, strict=False) for item in items if item]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}. Give addresses or CIDRs, e.g. 10.0.0.0/8,::1.") from None
