from django.contrib import admin
from django.urls import include, path

from gateway import exposition, probes, views

urlpatterns = [
    path("", views.home, name="home"),
    # Served by the light handler (gateway/asgi.py sends these paths to it): no session, no middleware.
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", exposition.metrics, name="metrics"),
    path("v1/", include("gateway.v1.urls")),
    path("admin/", admin.site.urls),
    path("", include("billing.urls")),
    path("", include("gateway.dashboard.urls")),
    path("api/", include("gateway.api.urls")),  # last: its catch-all answers unknown /api/ paths in JSON
]

# Django's error answers: JSON under /api/ (the management API's error body), its pages elsewhere.
handler400 = "gateway.api.errors.bad_request"
handler403 = "gateway.api.errors.permission_denied"
handler404 = "gateway.api.errors.page_not_found"
handler500 = "gateway.api.errors.server_error"
