"""Generated files: copied once into the media storage, handed out through signed URLs.

    store_media(...)          save bytes as a tenant's MediaFile (sync; astore_media from async code)
    signed_path(file)         /v1/media/<id>/content?expires=...&signature=...: works without an API
                              key until it expires (MEDIA_URL_TTL_SECONDS), for that one file only
    get_signed_media_file()   the file a signed path names, or DoesNotExist / LinkExpired
    read_media(file, ...)     its bytes, whole or a range, from the storage
    served_content_type(t)    what the file is served as: a known media type, else
                              application/octet-stream (never HTML, SVG or script from our origin)

The storage is Django's ``storages["media"]`` (settings: local disk under MEDIA_ROOT, or an
S3-compatible bucket), so nothing here knows where the bytes live. A signature covers the file
id, its tenant and the expiry (HMAC with SECRET_KEY): a URL cannot be stretched in time, moved to
another file, or used for another tenant's file; a bad one is answered like a missing file.
"""

import functools
import hmac
import mimetypes
import re
import time
import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone
from django.utils.crypto import salted_hmac

from media.models import MediaFile
from providers.blocking import run_blocking

SIGNING_SALT = "tollgate.media.signed-url"
# Extensions for the content types providers send; anything else keeps what mimetypes says.
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
              "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "audio/mpeg": ".mp3",
              "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/ogg": ".ogg", "audio/opus": ".opus",
              "audio/aac": ".aac", "audio/flac": ".flac", "audio/L16": ".pcm", "audio/pcm": ".pcm"}

# Served as themselves; anything else (text/html, image/svg+xml, whatever a provider claims) is
# served as application/octet-stream, as an attachment.
SERVED_TYPES = frozenset(kind.lower() for kind in
                         [*EXTENSIONS, "image/avif", "audio/mp4", "audio/webm", "audio/x-flac"])
PARAMETER = re.compile(r"[A-Za-z0-9!#$&^_.+-]+=[A-Za-z0-9!#$&^_.+-]+")


class LinkExpired(Exception):
    """A genuine signed URL past its expiry."""


def media_storage():
    return storages["media"]


def extension_for(content_type: str) -> str:
    base = content_type.split(";")[0].strip().lower()
    return EXTENSIONS.get(base) or mimetypes.guess_extension(base) or ".bin"


def served_content_type(content_type: str) -> str:
    """The Content-Type to serve a stored file with: its own if it is a known media type (with
    its plain name=value parameters, e.g. a PCM sample rate), else application/octet-stream."""
    base, *parameters = content_type.split(";")
    base = base.strip().lower()
    if base not in SERVED_TYPES:
        return "application/octet-stream"
    kept = [parameter.strip() for parameter in parameters if PARAMETER.fullmatch(parameter.strip())]
    return "; ".join([base, *kept])


def store_media(*, tenant_id: int, request_id: str, kind: str, content: bytes, content_type: str) -> MediaFile:
    """Save ``content`` in the media storage and record it as the tenant's file."""
    file_id = uuid.uuid4()
    now = timezone.now()
    name = f"{tenant_id}/{now:%Y/%m}/{file_id.hex}{extension_for(content_type)}"
    stored_name = media_storage().save(name, ContentFile(content))
    return MediaFile.objects.create(id=file_id, tenant_id=tenant_id, request_id=request_id, kind=kind,
                                    content_type=content_type, size=len(content), storage_name=stored_name,
                                    created_at=now)


async def astore_media(**fields) -> MediaFile:
    return await run_blocking(functools.partial(store_media, **fields))


def signature_of(file_id: str, tenant_id: int, expires: int) -> str:
    return salted_hmac(SIGNING_SALT, f"{file_id}:{tenant_id}:{expires}", algorithm="sha256").hexdigest()


def signed_path(file: MediaFile, *, ttl_seconds: int | None = None) -> str:
    """The file's content path with an expiring signature (prefix it with the public base URL)."""
    expires = int(time.time()) + (settings.MEDIA_URL_TTL_SECONDS if ttl_seconds is None else ttl_seconds)
    query = urlencode({"expires": expires, "signature": signature_of(str(file.id), file.tenant_id, expires)})
    return f"/v1/media/{file.id}/content?{query}"


def expires_at_of(path: str) -> int:
    """When a signed path stops working (Unix seconds)."""
    return int(path.rpartition("expires=")[2].partition("&")[0])


def get_signed_media_file(file_id: str, expires: str, signature: str) -> MediaFile:
    """The file a signed URL names. A URL that was never signed by us, or names another file or
    tenant, raises MediaFile.DoesNotExist (a 404 that says nothing); a genuine one that has
    expired raises LinkExpired."""
    try:
        file = MediaFile.objects.get(pk=uuid.UUID(file_id))
        expiry = int(expires)
    except (ValueError, MediaFile.DoesNotExist):
        raise MediaFile.DoesNotExist(file_id) from None
    if not hmac.compare_digest(signature_of(str(file.id), file.tenant_id, expiry), signature):
        raise MediaFile.DoesNotExist(file_id)
    if expiry < time.time():
        raise LinkExpired(file_id)
    return file


def read_media(file: MediaFile, *, start: int = 0, length: int | None = None) -> bytes:
    """The file's bytes from ``start``, ``length`` of them (all the rest when None)."""
    with media_storage().open(file.storage_name, "rb") as handle:
        if start:
            handle.seek(start)
        return handle.read() if length is None else handle.read(length)
