"""Sign-up that does not tell anyone whether an address has an account.

Every valid sign-up gets the same answer, "check your email" (/accounts/signup/sent/), and the
address one mail:
    a new address       a link to confirm it; the page behind the link makes the user and their
                        tenant on the Free plan, and logs them in
    an existing one     "someone tried to sign up with your address": log in or reset the password
Nothing is stored before the mailbox is proven (no half-made accounts, no tenant id held by a
stranger): the link carries the sign-up itself, encrypted and signed with a key derived from
SECRET_KEY (Fernet, so the password's hash is not readable in the mail), for LINK_SECONDS. Both
branches hash the password, so they also take the same time.
"""

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from django import forms
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify

from billing.subscriptions import free_plan
from gateway.dashboard.accounts import (
    Throttled,
    check_new_password,
    check_throttle,
    safe_next,
    throttled_page,
)
from gateway.dashboard.tenancy import CURRENT_TENANT_SESSION_KEY
from gateway.models import Tenant, slug_validator
from gateway.tenants import TenantExists, create_tenant

LINK_SECONDS = 3 * 24 * 3600
KEY_SALT = "tollgate.signup-link"


class AccountExists(Exception):
    pass


class SignupForm(forms.Form):
    email = forms.EmailField(label="Email")
    organization = forms.CharField(label="Organization name", max_length=200)
    slug = forms.CharField(
        label="Tenant id", max_length=63, required=False,
        help_text="Lowercase letters, digits and dashes; it appears in URLs. Leave empty to derive it from the name.",
    )
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_email(self) -> str:
        return self.cleaned_data["email"].lower()  # taken or not: the answer is the same

    def clean_slug(self) -> str:
        slug = self.cleaned_data.get("slug") or slugify(self.data.get("organization", ""))[:63].strip("-")
        slug_validator(slug)
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"The tenant id '{slug}' is taken: choose another.")
        return slug

    def clean(self):
        cleaned = super().clean()
        check_new_password(self, email=cleaned.get("email", ""))
        return cleaned


def link_cipher() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(salted_hmac(KEY_SALT, "fernet", algorithm="sha256").digest()))


def seal_signup(pending: dict) -> str:
    return link_cipher().encrypt(json.dumps(pending).encode()).decode()


def open_signup(token: str) -> dict | None:
    """The sign-up a link carries; None if it is not ours, was altered or has expired."""
    try:
        return json.loads(link_cipher().decrypt(token.encode(), ttl=LINK_SECONDS))
    except (InvalidToken, ValueError):
        return None


def start_signup(request, data: dict) -> None:
    """Mail the address what this sign-up means for it: a link to confirm, or a note to the owner."""
    pending = {"email": data["email"], "organization": data["organization"], "slug": data["slug"],
               "password": make_password(data["password1"]), "next": safe_next(request)}
    owner = get_user_model().objects.filter(email__iexact=data["email"]).order_by("pk").first()
    if owner is not None:
        context = {"email": owner.email, "login_url": request.build_absolute_uri(reverse("login")),
                   "reset_url": request.build_absolute_uri(reverse("password_reset"))}
        subject, template = "Someone tried to sign up with your address", "registration/signup_exists_email.txt"
    else:
        link = reverse("signup-confirm", args=[seal_signup(pending)])
        context = {"email": data["email"], "organization": data["organization"],
                   "link": request.build_absolute_uri(link)}
        subject, template = "Confirm your Tollgate sign-up", "registration/signup_email.txt"
    send_mail(subject=subject, message=render_to_string(template, context), from_email=None,
              recipient_list=[context["email"]])


@transaction.atomic
def sign_up(*, email: str, password_hash: str, organization: str, slug: str):
    """A user with that password and their own tenant on the Free plan, as its owner."""
    User = get_user_model()
    if User.objects.filter(email__iexact=email).exists():
        raise AccountExists(email)
    try:
        with transaction.atomic():
            user = User.objects.create(username=email, email=email, password=password_hash)
    except IntegrityError:  # the same address confirmed twice at once: the username is unique
        raise AccountExists(email) from None
    tenant = create_tenant(slug, name=organization, plan=free_plan(), owner_email=email)
    return user, tenant


def signup(request):
    if request.method == "POST":
        form = SignupForm(request.POST)
        try:
            check_throttle(request, "dashboard.signup", settings.SIGNUP_RATE, ["ip"])
        except Throttled as exc:
            return throttled_page(request, "registration/signup.html", form, exc)
        if form.is_valid():
            start_signup(request, form.cleaned_data)
            return HttpResponseRedirect(reverse("signup-sent"))
    else:
        form = SignupForm(initial={"email": request.GET.get("email", "")})
    return render(request, "registration/signup.html", {"form": form, "next": safe_next(request)})


def signup_sent(request):
    return render(request, "registration/signup_sent.html")


def confirm_signup(request, token: str):
    """The link's page: GET shows what will be made (mail scanners that follow links make
    nothing), POST makes it and logs the new owner in."""
    pending = open_signup(token)
    if pending is None:
        return render(request, "registration/signup_confirm.html", {"invalid": True}, status=404)
    context = {"pending": pending}
    if request.method == "POST":
        try:
            user, tenant = sign_up(email=pending["email"], password_hash=pending["password"],
                                   organization=pending["organization"], slug=pending["slug"])
        except AccountExists:
            context["error"] = "This address has an account already (this link was used): log in."
        except TenantExists:
            context["error"] = (f"The tenant id '{pending['slug']}' was taken since you signed up: "
                                "sign up again with another.")
        else:
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[CURRENT_TENANT_SESSION_KEY] = tenant.slug
            return HttpResponseRedirect(next_after_signup(request, pending["next"]))
        return render(request, "registration/signup_confirm.html", context, status=409)
    return render(request, "registration/signup_confirm.html", context)


def next_after_signup(request, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL
