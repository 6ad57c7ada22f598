"""Tenant commands answered in chat, for any chat client: the model ``admin/magic`` runs them, and
``/help`` sent to any ``admin/...`` model lists them. What they read or change is the caller's
tenant's only, through the tenant-scoped functions of its apps (conversations.store,
usage.summaries, billing.entitlements); no command takes another tenant's id.

    /help                          the commands
    /responses                     the newest stored responses (POST /v1/responses with store)
    /delete-responses [confirm]    how many there are; with ``confirm``, delete every one
    /usage                         this month's spend, requests, tokens and media, against the plan's limits
    /models                        the chat, image, ... models this key may call on the plan

Decisions:
- Every command but /help needs a key with the 'management' scope (only owners and admins grant
  it): 403 missing_scope otherwise, as the management API answers. /help is any key's.
- Free: no provider is called and no usage record written; a command counts against the key's
  request rate like any /v1 request (429 past it).
- Deleting is asked twice: without ``confirm`` it only says what it would delete.
- Another ``admin/...`` model answers only /help (404 model_not_found otherwise); an unknown
  command is a 400 that lists the commands.
"""

from collections.abc import Awaitable, Callable
from decimal import Decimal

from billing.entitlements import Caller, is_model_allowed, media_limits
from billing.rate_limits import check_requests
from conversations import store
from gateway.serving.call import Call
from gateway.serving.errors import GatewayError
from providers import router
from providers.blocking import run_blocking
from usage.summaries import month_summary

ADMIN_PREFIX = "admin/"
MAGIC_MODEL = "admin/magic"
MANAGEMENT_SCOPE = "management"  # gateway.models.MANAGEMENT_SCOPE
HELP_COMMANDS = ("/help", "--help")
LISTED_RESPONSES = 20
UNITS = (("images", "images"), ("video_seconds", "seconds of video"), ("characters", "characters of speech"),
         ("audio_seconds", "seconds of audio transcribed"))

Command = Callable[[Caller, list[str]], Awaitable[str]]


def is_admin_model(model: str) -> bool:
    return model.startswith(ADMIN_PREFIX)


async def run_command(call: Call, model: str, text: str) -> str:
    """The answer (markdown) to the command ``text`` sent to ``model`` (an admin/... model)."""
    words = text.split()
    name = words[0].lower() if words else ""
    call.outcome.rate = await check_requests(call.caller)
    if name in HELP_COMMANDS:
        return help_text()
    if model != MAGIC_MODEL:
        raise GatewayError(404, f"The model '{model}' does not exist. Tenant commands go to {MAGIC_MODEL}; send "
                           "/help to list them.", param="model", code="model_not_found")
    if name not in COMMANDS:
        raise GatewayError(400, f"Unknown command {name[:40]!r}. {MAGIC_MODEL} answers: "
                           f"{', '.join(['/help', *COMMANDS])}.", param="messages", code="unknown_command")
    if MANAGEMENT_SCOPE not in call.scopes:
        raise GatewayError(403, f"API key '{call.caller.key_name}' may not run {name}: tenant commands need a key "
                           "with the 'management' scope, which owners and admins grant in the dashboard.",
                           type="permission_error", code="missing_scope")
    _, command = COMMANDS[name]
    return await command(call.caller, words[1:])


def help_text() -> str:
    lines = [f"Tenant commands: send one as your message to `{MAGIC_MODEL}`. They need an API key with the "
             "'management' scope, act on your tenant only, and cost nothing.", ""]
    lines += [f"- `{name}`: {about}" for name, (about, _) in COMMANDS.items()]
    return "\n".join(lines)


async def list_responses(caller: Caller, arguments: list[str]) -> str:
    rows, more = await run_blocking(lambda: store.list_responses_for_tenant(caller.tenant_id, limit=LISTED_RESPONSES))
    if not rows:
        return "No stored responses."
    lines = ["| id | model | status | created (UTC) |", "|---|---|---|---|"]
    lines += [f"| {row.id} | {row.model} | {row.status} | {row.created_at:%Y-%m-%d %H:%M} |" for row in rows]
    if more:
        lines += ["", f"The newest {LISTED_RESPONSES} are shown; GET /v1/responses pages through all of them."]
    return "\n".join(lines)


async def delete_responses(caller: Caller, arguments: list[str]) -> str:
    if [word.lower() for word in arguments] != ["confirm"]:
        count = await run_blocking(lambda: store.live_responses(caller.tenant_id).count())
        return (f"This would delete all {count} stored responses of tenant {caller.tenant_slug}, for good. Send "
                "`/delete-responses confirm` to do it.")
    deleted = await run_blocking(store.delete_responses_for_tenant, caller.tenant_id)
    return f"Deleted {deleted} stored responses."


def money(amount: Decimal | None) -> str:
    return "no limit" if amount is None else f"${amount.quantize(Decimal('0.000001')).normalize():f}"


async def show_usage(caller: Caller, arguments: list[str]) -> str:
    summary = await run_blocking(month_summary, caller.tenant_id)
    plan = caller.plan
    limits = media_limits(plan)
    lines = [f"**{summary['month']:%B %Y}** on plan {plan.name}:", "",
             f"- spend: {money(summary['cost'])} of {money(plan.monthly_spend_limit)} "
             f"({money(summary['reserved'])} held by requests in flight)",
             f"- requests: {summary['requests']}; tokens: {summary['input_tokens']} in, "
             f"{summary['output_tokens']} out",
             f"- request rate: {plan.requests_per_minute} per minute per key"]
    for unit, name in UNITS:
        used, limit = summary[unit], limits[unit]
        if used or limit is not None:
            lines.append(f"- {name}: {used.normalize():f}" if isinstance(used, Decimal) else f"- {name}: {used}")
            lines[-1] += f" of {limit}" if limit is not None else " (no limit)"
    if summary["by_model"]:
        lines += ["", "| model | requests | cost |", "|---|---|---|"]
        lines += [f"| {row['model']} | {row['requests']} | {money(row['cost'])} |" for row in summary["by_model"]]
    return "\n".join(lines)


async def list_models(caller: Caller, arguments: list[str]) -> str:
    catalog = await router.get_catalog()
    models = sorted((m for m in catalog.models.values() if is_model_allowed(caller, m)),
                    key=lambda m: (m.capability, m.public_id))
    if not models:
        return f"Plan {caller.plan.name} (with this key's allow-list) includes no model."
    return "\n".join([f"Models this key may call on plan {caller.plan.name}:", "",
                      *(f"- `{m.public_id}` ({m.capability})" for m in models)])


COMMANDS: dict[str, tuple[str, Command]] = {
    "/responses": (f"your {LISTED_RESPONSES} newest stored responses", list_responses),
    "/delete-responses": ("delete every stored response (add `confirm`)", delete_responses),
    "/usage": ("this month's spend, requests, tokens and media against your plan's limits", show_usage),
    "/models": ("the models your plan and this key allow", list_models),
}
