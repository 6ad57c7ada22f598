"""Login throttles, shared by the dashboard's login and the admin's: one budget for both.

Only failed logins count; a successful one costs nothing. Three counters (django-ratelimit's
core, in the default cache):
    per client address            LOGIN_ATTEMPTS_RATE (10/15m): past it, that address tries no
                                  password, for any username
    per username                  LOGIN_USERNAME_RATE (30/h), any address
    per username and address      how often this address failed on this username
A username past its limit is refused only from addresses that have failed on it themselves in
that window. Someone guessing a victim's password from many addresses then gets one try per new
address, and the victim, from an address that has not failed, still logs in: the throttle
slows guessing but cannot be used to lock a chosen user out.

The address is proxies.client_address (X-Forwarded-For only through TRUSTED_PROXIES); IPv6
addresses count per /64, as django-ratelimit counts them, since one host holds a whole /64.
"""

import ipaddress
import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django_ratelimit.core import get_usage

from gateway.proxies import client_address

IPV6_PREFIX = 64


class Throttled(Exception):
    def __init__(self, minutes: int):
        self.minutes = minutes
        super().__init__(f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.")

    @classmethod
    def after(cls, seconds: int) -> "Throttled":
        return cls(max(1, math.ceil(seconds / 60)))


def typed_username(request) -> str:
    return request.POST.get("username", "").strip().lower()


def address_block(request) -> str:
    address = ipaddress.ip_address(client_address(request))
    prefix = IPV6_PREFIX if address.version == 6 else 32
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


COUNTERS = {  # name -> (the rate setting, the key)
    "address": ("LOGIN_ATTEMPTS_RATE", lambda group, request: address_block(request)),
    "username": ("LOGIN_USERNAME_RATE", lambda group, request: typed_username(request)),
    "pair": ("LOGIN_USERNAME_RATE", lambda group, request: f"{typed_username(request)}\n{address_block(request)}"),
}


def failures(request, counter: str, *, increment: bool = False) -> dict:
    rate_setting, key = COUNTERS[counter]
    usage = get_usage(request, group=f"login.{counter}", key=key, rate=getattr(settings, rate_setting),
                      method="POST", increment=increment)
    # None: ratelimiting is switched off (RATELIMIT_ENABLE). A failing cache reads as limit 0.
    return usage or {"count": 0, "limit": math.inf, "time_left": 0}


def is_spent(usage: dict) -> bool:
    return usage["count"] >= usage["limit"]


def check_login_allowed(request) -> None:
    """Raise Throttled when this login POST may not try a password now. Counts nothing."""
    address = failures(request, "address")
    if is_spent(address):
        raise Throttled.after(address["time_left"])
    username = failures(request, "username")
    if is_spent(username) and failures(request, "pair")["count"] > 0:
        raise Throttled.after(username["time_left"])


def record_login_failure(request) -> None:
    """Count a login POST whose credentials were refused."""
    for counter in COUNTERS:
        failures(request, counter, increment=True)


class CountsFailedLogins:
    """Mixed into an AuthenticationForm (before it): credentials it refuses are counted."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            record_login_failure(self.request)
            raise
