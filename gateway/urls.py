from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("v1/", include("gateway.v1.urls")),
    path("admin/", admin.site.urls),
]
