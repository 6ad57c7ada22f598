"""Secrets for a self-hosted install: from the environment, or generated once into var/.

Imported by the settings module, so it uses nothing of Django's but its exception.
"""

import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

GENERATED_BYTES = 48  # 64 characters


def read_or_create_secret(name: str, *, var_dir: Path, min_length: int = 0) -> str:
    """``name`` from the environment, else the one kept in ``var_dir`` (generated if none is).

    Production sets the variable. When it is set it must be a real secret: shorter than
    ``min_length`` (empty included) stops the process, rather than keying hashes or encryption
    with next to nothing. Without ``min_length`` an empty variable counts as unset.
    """
    value = os.environ.get(name)  # not django-environ: it would read "$..." as another variable's name
    if value is not None and (value or min_length):
        if len(value) < min_length:
            raise ImproperlyConfigured(
                f"{name} is set but is {len(value)} characters long; it must be at least {min_length}. Set a "
                f"long random value (python -c 'import secrets; print(secrets.token_urlsafe(48))'), or unset "
                f"it to have one generated into {var_dir}.")
        return value
    path = var_dir / name.lower()
    if not path.exists():
        create_secret_file(path)
    stored = path.read_text().strip()
    if len(stored) < max(min_length, 1):
        raise ImproperlyConfigured(f"{path} holds no usable {name}. Delete the file to have a new one generated "
                                   f"(whatever the old one keyed is lost), or set {name}.")
    return stored


def create_secret_file(path: Path) -> None:
    """A new random secret at ``path``, unless another process makes one first.

    The file appears whole or not at all: written to a private temporary file beside it, synced,
    then hard-linked into place. Linking fails if ``path`` exists (O_EXCL semantics, which
    os.replace lacks: it would overwrite a secret another process may already use), so every
    process racing here ends up reading the winner's secret, never an empty file.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(GENERATED_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new name survives a crash too
        finally:
            os.close(directory)
    finally:
        os.unlink(temp)
