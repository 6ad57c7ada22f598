"""Sign up, log in (throttled), and the password-reset form that also reaches invited users.

Logging out, password change and reset are django.contrib.auth's views on our templates
(templates/registration/).
"""

import math

from django import forms
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django_ratelimit.core import get_usage

from billing.subscriptions import free_plan
from gateway.dashboard.tenancy import CURRENT_TENANT_SESSION_KEY
from gateway.models import Tenant, slug_validator
from gateway.tenants import TenantExists, create_tenant


class Throttled(Exception):
    def __init__(self, minutes: int):
        self.minutes = minutes
        super().__init__(f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.")


def check_throttle(request, group: str, rate: str, keys: list[str]) -> None:
    """Count this POST against each key (an IP, a username); over the rate on any: Throttled."""
    for key in keys:
        usage = get_usage(request, group=group, key=key, rate=rate, method="POST", increment=True)
        if usage is not None and usage["should_limit"]:
            raise Throttled(max(1, math.ceil(usage["time_left"] / 60)))


def throttled_page(request, template: str, form, exc: Throttled):
    return render(request, template, {"form": form, "throttled": str(exc)}, status=429)


def safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return ""


class EmailAuthenticationForm(AuthenticationForm):
    """Log in with the account's email in any letter case (usernames made by an operator work too)."""

    def clean_username(self) -> str:
        typed = self.cleaned_data["username"].strip()
        if "@" in typed:
            user = get_user_model().objects.filter(email__iexact=typed).order_by("pk").first()
            if user is not None:
                return user.get_username()
        return typed


class LoginView(auth_views.LoginView):
    """Django's login, with every POST counted per client IP and per username."""

    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        try:
            check_throttle(request, "dashboard.login", settings.LOGIN_ATTEMPTS_RATE,
                           ["ip", "post:username"])
        except Throttled as exc:
            return throttled_page(request, self.template_name, self.get_form(), exc)
        return super().post(request, *args, **kwargs)


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
        email = self.cleaned_data["email"].lower()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email exists already: log in, or reset its password.")
        return email

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


def check_new_password(form: forms.Form, *, email: str) -> None:
    """A form's password1 and password2: the same, and accepted by the validators for a user of
    that email; else the errors go on the form's fields."""
    password1, password2 = form.cleaned_data.get("password1"), form.cleaned_data.get("password2")
    if password1 and password2 and password1 != password2:
        form.add_error("password2", "The two passwords differ.")
    elif password1:
        try:
            password_validation.validate_password(password1, get_user_model()(username=email, email=email))
        except forms.ValidationError as exc:
            form.add_error("password1", exc)


@transaction.atomic
def sign_up(*, email: str, password: str, organization: str, slug: str):
    """A user with a password and their own tenant on the Free plan, as its owner."""
    user = get_user_model().objects.create_user(username=email, email=email, password=password)
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
            try:
                user, tenant = sign_up(email=form.cleaned_data["email"], password=form.cleaned_data["password1"],
                                       organization=form.cleaned_data["organization"],
                                       slug=form.cleaned_data["slug"])
            except TenantExists as exc:
                form.add_error("slug", str(exc))
            else:
                auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                request.session[CURRENT_TENANT_SESSION_KEY] = tenant.slug
                return HttpResponseRedirect(safe_next(request) or settings.LOGIN_REDIRECT_URL)
    else:
        form = SignupForm(initial={"email": request.GET.get("email", "")})
    return render(request, "registration/signup.html", {"form": form, "next": safe_next(request)})


class ResetPasswordForm(PasswordResetForm):
    """Also reaches users who never had a password (made by an operator or an invitation):
    proving the mailbox is how they set one."""

    def get_users(self, email):
        User = get_user_model()
        return (user for user in User._default_manager.filter(email__iexact=email, is_active=True)
                if user.email.lower() == email.lower())


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, on ResetPasswordForm, with POSTs counted like logins (no mail flood)."""

    form_class = ResetPasswordForm

    def post(self, request, *args, **kwargs):
        try:
            check_throttle(request, "dashboard.password_reset", settings.LOGIN_ATTEMPTS_RATE, ["ip", "post:email"])
        except Throttled as exc:
            return throttled_page(request, self.template_name, self.get_form(), exc)
        return super().post(request, *args, **kwargs)
