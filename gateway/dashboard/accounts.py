"""Log in (throttled), and the password-reset form that also reaches invited users.

Sign-up is signup.py. Logging out, password change and reset are django.contrib.auth's views
on our templates (templates/registration/).
"""

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_ratelimit.core import get_usage

from gateway.login_throttle import CountsFailedLogins, Throttled, check_login_allowed


def check_throttle(request, group: str, rate: str, keys: list[str]) -> None:
    """Count this POST against each key (the client address "ip", a field); over the rate on
    any: Throttled. For sign-up and password reset; logins count only failures (login_throttle)."""
    for key in keys:
        usage = get_usage(request, group=group, key=key, rate=rate, method="POST", increment=True)
        if usage is not None and usage["should_limit"]:
            raise Throttled.after(usage["time_left"])


def throttled_page(request, template: str, form, exc: Throttled):
    return render(request, template, {"form": form, "throttled": str(exc)}, status=429)


def safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return ""


class EmailAuthenticationForm(CountsFailedLogins, AuthenticationForm):
    """Log in with the account's email in any letter case (usernames made by an operator work too).
    Refused credentials count against the login throttles."""

    def clean_username(self) -> str:
        typed = self.cleaned_data["username"].strip()
        if "@" in typed:
            user = get_user_model().objects.filter(email__iexact=typed).order_by("pk").first()
            if user is not None:
                return user.get_username()
        return typed


class LoginView(auth_views.LoginView):
    """Django's login, throttled by failed logins per client address and per username."""

    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        try:
            check_login_allowed(request)
        except Throttled as exc:
            return throttled_page(request, self.template_name, self.get_form(), exc)
        return super().post(request, *args, **kwargs)


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
