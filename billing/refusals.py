"""How billing says no: a Refusal carries the status and envelope fields the client sees (the
HTTP edge builds the envelope from it, gateway.v1.errors), and names what to do next."""


class Refusal(Exception):
    """The plan says no. Carries the status and envelope fields the client sees."""

    def __init__(self, status: int, message: str, *, type: str, code: str, retry_after: int | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.retry_after = retry_after
        self.headers = headers or {}


def upgrade_hint(caller) -> str:
    """Where the caller's tenant upgrades (``caller.base_url``: the gateway as it reaches it)."""
    return f"upgrade at {caller.base_url}/billing"
