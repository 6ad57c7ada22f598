"""What the fake video providers (Sora in openai_upstream, Veo, Runway) share: the jobs they
accept and how each one goes, scripted by the test.

``book.enqueue(VideoScript(...))`` decides how the next submitted job behaves: refused at
submission with an error status, or accepted and then answered "still running" for ``polls``
polls before it completes (or fails, or is cancelled). ``hold_polls`` makes polls wait until
``book.release()``: a worker can be caught in the middle of a poll. Each fake formats the
jobs in its own wire format.
"""

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

# A few bytes that start like an MP4 (ftyp box, then a free box): enough for a file type check.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\x00\x00\x00\x08free"


@dataclass
class VideoScript:
    polls: int = 1  # polls answered "running" before the job ends
    outcome: str = "completed"  # | "failed" | "cancelled"
    failure: str = "The fake provider failed the job as scripted."
    submit_status: int = 200  # an error status refuses the submission
    submit_error: str = "The fake provider refused the job as scripted."
    content: bytes = FAKE_MP4
    hold_polls: bool = False  # polls wait for release()


@dataclass
class FakeJob:
    id: str
    body: dict
    script: VideoScript
    polls: int = 0
    cancelled: bool = False
    downloads: int = 0

    @property
    def state(self) -> str:
        """running | completed | failed | cancelled, as of the polls made so far."""
        if self.cancelled:
            return "cancelled"
        return "running" if self.polls <= self.script.polls else self.script.outcome

    @property
    def progress(self) -> float:
        return min(0.99, self.polls / (self.script.polls + 1)) if self.state == "running" else 1.0


@dataclass
class VideoBook:
    prefix: str = "job"
    script: deque = field(default_factory=deque)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    submissions: list[dict] = field(default_factory=list)  # every submission seen, accepted or not
    polls_started: int = 0  # polls received, including any still held
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _released: asyncio.Event | None = None

    def enqueue(self, *scripts: VideoScript) -> None:
        self.script.extend(scripts)

    def next_script(self) -> VideoScript:
        return self.script.popleft() if self.script else VideoScript()

    def accept(self, body: dict, script: VideoScript) -> FakeJob:
        job = FakeJob(id=f"{self.prefix}_{next(self._ids)}", body=body, script=script)
        self.jobs[job.id] = job
        return job

    async def poll(self, job_id: str) -> FakeJob | None:
        job = self.jobs.get(job_id)
        self.polls_started += 1
        if job is not None and job.script.hold_polls:
            await self._gate().wait()
        if job is not None:
            job.polls += 1
        return job

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(self._gate().set)

    def _gate(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def reset(self) -> None:
        self.script.clear()
        self.jobs.clear()
        self.submissions.clear()
        self.polls_started = 0
        self._released = None
