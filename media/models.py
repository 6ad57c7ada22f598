"""Generated files the gateway keeps for tenants, and long-running video jobs.

Provider URLs expire, so every generated image, video and audio file is copied into our
storage (Django's storage API: local disk by default, an S3-compatible bucket by settings)
and served through signed, expiring, tenant-scoped URLs (media.files).
"""

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone


class MediaKind(models.TextChoices):
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"


class MediaFile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="media_files")
    request_id = models.CharField(max_length=64, db_index=True, help_text="The /v1 request that made it.")
    kind = models.CharField(max_length=8, choices=MediaKind.choices)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    storage_name = models.CharField(max_length=300, help_text="Its name in the media storage.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.IN_PROGRESS)


class VideoJob(models.Model):
    """A video being generated. Durable: the worker (manage.py run_worker) claims due jobs with
    row locking (claimed_until is a lease), polls the provider, and settles the usage once."""

    id = models.CharField(primary_key=True, max_length=40, editable=False, help_text="video_...")
    tenant = models.ForeignKey("gateway.Tenant", on_delete=models.CASCADE, related_name="video_jobs")
    api_key = models.ForeignKey("gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request_id = models.CharField(max_length=64, unique=True, help_text="Its usage record's request id.")
    model = models.CharField(max_length=200, help_text="Public model id asked for.")
    provider = models.CharField(max_length=64, blank=True, help_text="Who accepted the job.")
    served_model = models.CharField(max_length=200, blank=True, help_text="Public model id that accepted it.")
    upstream_model = models.CharField(max_length=200, blank=True, help_text="The provider's name for that model.")
    key_fingerprint = models.CharField(
        max_length=16, blank=True, help_text="Which of the provider's credentials accepted it (polled with the same).")
    params = models.JSONField(default=dict, help_text="The request, as the client sent it (normalised).")
    chain = models.JSONField(default=list, blank=True, help_text="Public model ids still to try if submission fails.")
    handle = models.JSONField(default=dict, blank=True, help_text="The adapter's note of how to reach the job.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    seconds = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal("0"))
    reserved = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0"))
    month = models.DateField(null=True, blank=True, help_text="The ledger month its reservation was made in.")
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0"))
    file = models.ForeignKey(MediaFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attempts = models.PositiveIntegerField(default=0, help_text="Polls made.")
    failures = models.PositiveIntegerField(default=0, help_text="Steps failed in a row; VIDEO_MAX_FAILURES ends the job.")
    next_poll_at = models.DateTimeField(default=timezone.now, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    deadline = models.DateTimeField(help_text="Failed as timed out if not done by then.")
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"]),
                   models.Index(fields=["status", "next_poll_at"], name="media_videojob_due_idx")]

    def __str__(self) -> str:
        return f"{self.id} {self.model} {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
