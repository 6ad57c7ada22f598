"""The request object of a /v1 call: Django's ASGIRequest, with headers a view reads in one dict
lookup.

Django's ``request.headers`` (HttpHeaders) is a case-insensitive Mapping: each ``get`` is
Mapping.get, __getitem__ and a lower-casing, and a KeyError for every header the request lacks.
A /v1 call reads a dozen headers, most of them absent (the client's provider and search keys,
cache directives, end user, tags, request id), so those lookups cost more than the headers are
worth. ``ApiHeaders`` holds the same names and values (from META, as Django's does: duplicates
joined with commas, ``_`` read as ``-``) in a dict keyed in lower case.
"""

from django.core.handlers.asgi import ASGIRequest
from django.utils.functional import cached_property

UNPREFIXED = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


class ApiHeaders(dict):
    def __init__(self, meta: dict):
        super().__init__()
        for key, value in meta.items():
            if key.startswith("HTTP_"):
                self[key[5:].replace("_", "-").lower()] = value
            elif key in UNPREFIXED:
                self[UNPREFIXED[key]] = value

    def get(self, name: str, default=None):
        return dict.get(self, name.lower().replace("_", "-"), default)

    def __getitem__(self, name: str):
        return dict.__getitem__(self, name.lower().replace("_", "-"))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower().replace("_", "-"))


class ApiRequest(ASGIRequest):
    @cached_property
    def headers(self) -> ApiHeaders:
        return ApiHeaders(self.META)
