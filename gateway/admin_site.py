"""The operators' admin site: Django's, with its login throttled like the dashboard's.

Installed as the default site by gateway.apps.AdminConfig, so every ``admin.register`` and
``admin.site.urls`` use it. Only imported once the apps are loaded (the admin's forms need the
user model).
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.template.response import TemplateResponse

from gateway.login_throttle import CountsFailedLogins, Throttled, check_login_allowed


class AdminLoginForm(CountsFailedLogins, AdminAuthenticationForm):
    pass


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm

    def login(self, request, extra_context=None):
        if request.method == "POST":
            try:
                check_login_allowed(request)
            except Throttled as exc:
                context = {**self.each_context(request), "title": "Log in", "throttled": str(exc)}
                return TemplateResponse(request, "admin/login_throttled.html", context, status=429)
        return super().login(request, extra_context)
