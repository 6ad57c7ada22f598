from django.contrib import admin
from django.urls import include, path

from gateway import views

urlpatterns = [
    path("", views.home, name="home"),
    path("v1/", include("gateway.v1.urls")),
    path("admin/", admin.site.urls),
    path("", include("billing.urls")),
    path("", include("gateway.dashboard.urls")),
    path("api/", include("gateway.api.urls")),  # last: its catch-all answers unknown /api/ paths in JSON
]
