"""The playground: a member picks a model of the plan, sends a prompt and watches the answer
arrive over a WebSocket (ws/tenants/<slug>/playground/, session-authenticated).

A prompt takes the /v1 request path itself, through ``gateway.serving.chat.serve_chat``: the same
model and plan checks, admission (rate window and spend cap), routing, fallbacks and
settlement as POST /v1/chat/completions. Only the caller and the wire differ:

- the caller is the member, not an API key: its usage record has no key (``api_key`` null,
  shown as "playground"), and its requests share one rate window per tenant at the plan's
  per-key rate;
- the answer's events become JSON messages on the socket instead of server-sent events.

Socket protocol. The page sends ``{"action": "run", "model", "prompt", "max_tokens"?}`` or
``{"action": "stop"}``. The server answers with, in order:
    {"type": "started", "request_id", "model"}
    {"type": "token", "text"}                 (many)
    {"type": "done", "request_id", "model", "input_tokens", "output_tokens", "cost", "stopped",
     "outcome", "error"?}                     the settled usage record: what the request cost
or {"type": "error", "message", "code", "status"} when the request is refused or fails before
any answer (also followed by "done" when it was admitted, so its cost shows).
"""

import asyncio
import logging
import uuid
from contextlib import suppress

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.shortcuts import render

from billing.entitlements import Caller, Refusal, models_on_plan
from billing.models import SubscriptionStatus
from gateway.access import (
    get_provider_keys_for_tenant,
    get_subscription_for_tenant,
    get_usage_records_for_tenant,
)
from gateway.dashboard.consumers import FORBIDDEN, current_membership
from gateway.dashboard.tenancy import tenant_page
from gateway.models import Membership
from gateway.serving.call import Call
from gateway.serving.chat import serve_chat
from gateway.serving.streams import ChatStream, Failed
from gateway.v1 import openai_chat
from gateway.v1.answers import failure_of
from gateway.v1.errors import GatewayError, as_gateway_error
from providers.errors import ProviderError
from providers.types import Delta, Finish
from usage.charts import format_money

log = logging.getLogger(__name__)

PLAYGROUND_KEY_NAME = "playground"
MAX_PROMPT_CHARS = 32_000


@tenant_page("playground")
def playground_page(request, membership):
    plan = get_subscription_for_tenant(membership.tenant).plan
    models = [model.public_id for model in models_on_plan(plan) if model.capability == "chat"]
    return render(request, "dashboard/playground.html", {"models": models, "plan": plan})


def caller_for_member(membership: Membership) -> Caller:
    """The member as a /v1 caller: the tenant's plan and own provider keys, no API key."""
    tenant = membership.tenant
    subscription = get_subscription_for_tenant(tenant)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise GatewayError(403, f"Tenant {tenant.slug} has no active subscription. Choose a plan on the billing "
                           "page.", type="permission_error", code="no_subscription")
    return Caller(
        tenant_id=tenant.pk, tenant_slug=tenant.slug, key_id=None, key_name=PLAYGROUND_KEY_NAME,
        key_allowed_models=(), plan=subscription.plan,
        provider_keys={key.provider: key.get_secret() for key in get_provider_keys_for_tenant(tenant)},
    )


def settled_record(tenant, request_id: str):
    return get_usage_records_for_tenant(tenant).filter(request_id=request_id).first()


def chat_body(content: dict) -> dict:
    """The page's message as a Chat Completions body, for the /v1 decoder to check."""
    prompt = content.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise GatewayError(400, "Type a prompt first.", code="missing_prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise GatewayError(400, f"The prompt is {len(prompt)} characters long; the playground takes at most "
                           f"{MAX_PROMPT_CHARS}. Call /v1/chat/completions for longer ones.", code="prompt_too_long")
    body = {"model": content.get("model"), "messages": [{"role": "user", "content": prompt}], "stream": True,
            "stream_options": {"include_usage": True}}
    max_tokens = content.get("max_tokens")
    if max_tokens not in (None, ""):
        try:
            body["max_tokens"] = int(max_tokens)
        except (TypeError, ValueError):
            raise GatewayError(400, f"Max tokens must be a whole number, not {max_tokens!r}.",
                               param="max_tokens") from None
    return body


class PlaygroundConsumer(AsyncJsonWebsocketConsumer):
    """One member's playground: runs one prompt at a time and streams its answer. The membership
    is read again for each message: once it is gone, or its role may no longer use the
    playground, the socket closes (4403) and a running answer is cancelled."""

    running: asyncio.Task | None = None
    relaying: asyncio.Task | None = None

    async def connect(self):
        membership = await current_membership(self.scope, "playground")
        if membership is None:
            await self.close(code=FORBIDDEN)
            return
        self.membership = membership
        await self.accept()

    async def disconnect(self, code):
        await self.cancel_running()

    async def cancel_running(self) -> None:
        # Leaving the page mid-answer is a client that left: the upstream call is cancelled and
        # the tokens already produced are billed, as on /v1.
        if self.running is not None and not self.running.done():
            self.running.cancel()
            with suppress(asyncio.CancelledError):
                await self.running

    async def receive_json(self, content, **kwargs):
        membership = await current_membership(self.scope, "playground")
        if membership is None:
            await self.cancel_running()
            await self.close(code=FORBIDDEN)
            return
        self.membership = membership
        action = content.get("action") if isinstance(content, dict) else None
        if action == "run":
            if self.running is not None and not self.running.done():
                await self.send_json({"type": "error", "code": "busy", "status": 409,
                                      "message": "A prompt is still running: stop it or wait for its end."})
                return
            self.running = asyncio.ensure_future(self.run(content))
        elif action == "stop":
            if self.relaying is not None and not self.relaying.done():
                self.relaying.cancel()
        else:
            await self.send_json({"type": "error", "code": "unknown_action", "status": 400,
                                  "message": "Send {\"action\": \"run\", ...} or {\"action\": \"stop\"}."})

    async def run(self, content: dict) -> None:
        request_id = f"req_{uuid.uuid4().hex}"
        try:
            chat = openai_chat.decode(chat_body(content))
            caller = await database_sync_to_async(caller_for_member)(self.membership)
            outcome = await serve_chat(Call(caller, request_id), chat)
        except (GatewayError, Refusal, ProviderError) as exc:
            await self.send_error(as_gateway_error(exc))
            await self.send_settled(request_id, stopped=False)
            return
        except Exception:
            log.exception("playground request %s failed in the gateway", request_id)
            await self.send_error(GatewayError(500, f"The gateway failed on this request ({request_id}).",
                                               type="server_error", code="internal_error"))
            await self.send_settled(request_id, stopped=False)
            return
        await self.send_json({"type": "started", "request_id": request_id, "model": outcome.served_model})
        self.relaying = asyncio.ensure_future(self.relay(outcome.stream))
        stopped = False
        try:
            await self.relaying
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # the socket closed: nobody to tell
            stopped = True  # the member pressed stop: the relay settled what was produced
        await self.send_settled(request_id, stopped=stopped)

    async def relay(self, stream: ChatStream) -> None:
        """The answer's events as socket messages (the stream settles however it ends)."""
        try:
            async for event in stream:
                if isinstance(event, Delta) and event.content:
                    await self.send_json({"type": "token", "text": event.content})
                elif isinstance(event, Finish):
                    await self.send_json({"type": "finish", "reason": event.reason})
                elif isinstance(event, Failed):
                    await self.send_error(failure_of(event))
        finally:
            await stream.aclose()

    async def send_error(self, error: GatewayError) -> None:
        await self.send_json({"type": "error", "message": error.message, "code": error.code, "status": error.status})

    async def send_settled(self, request_id: str, *, stopped: bool) -> None:
        """The request's usage record, once settled: what it used and cost. A request refused
        before admission has none."""
        record = await database_sync_to_async(settled_record)(self.membership.tenant, request_id)
        if record is None:
            return
        await self.send_json({
            "type": "done", "request_id": record.request_id, "model": record.model, "stopped": stopped,
            "input_tokens": record.input_tokens, "output_tokens": record.output_tokens,
            "cost": str(record.cost.normalize()), "cost_display": format_money(record.cost),
            "outcome": record.outcome, "ending": record.get_ending_display(),
        })
