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
        self.headers = dict(headers or {})


# The SDKs retry a 429 at once; a hard stop (a spent cap, a used-up limit) stays one until the
# month, the period or the plan changes.
DO_NOT_RETRY = {"x-should-retry": "false"}


def upgrade_hint(caller) -> str:
    """Where the caller's tenant upgrades (``caller.base_url``: the gateway as it reaches it)."""
    return f"upgrade at {caller.base_url}/billing"


def spend_cap_refusal(caller, *, costs: str, advice: str = "") -> Refusal:
    """The 429 insufficient_quota of a request the plan's monthly spend cap has no room for.
    ``costs`` says what the request could cost ("this request could cost up to $0.16"),
    ``advice`` what the client could change first ("Lower max_tokens")."""
    plan = caller.plan
    steps = f"{advice}, wait for next month" if advice else "Wait for next month"
    return Refusal(429, f"You exceeded your current quota: plan {plan.name} allows ${plan.monthly_spend_limit} of "
                   f"spend per month and {costs}. {steps}, or {upgrade_hint(caller)}.", type="insufficient_quota",
                   code="insufficient_quota", headers=DO_NOT_RETRY)
