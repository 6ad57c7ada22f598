from django.shortcuts import render


def home(request):
    return render(request, "gateway/home.html", {"api_base": request.build_absolute_uri("/v1").rstrip("/")})
