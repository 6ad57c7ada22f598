"""Members of a tenant: invite, accept, change role, remove, revoke an invitation.

Each workflow is one transaction that re-reads what it decides on under a lock, so two
owners acting at once cannot leave a tenant without an owner or past its plan's member limit.
The acting membership is keyword-only; the rules (tenancy.py's docstring) raise
NotAllowed with a message for the person who tried.

A member's keys follow the member: removing someone revokes the keys they created in the
tenant, and a role that may not grant the 'management' scope takes it from their keys, both in
the workflow's transaction (and out of this process's key cache; other workers within
KEY_CACHE_SECONDS).

An invitation link carries a random token; only its SHA-256 hash is stored, so the table
alone cannot be used to join.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Subscription
from gateway.api_keys import revoke_keys_created_by, withdraw_scope_from_keys_created_by
from gateway.models import MANAGEMENT_SCOPE, MANAGERS, Invitation, Membership, Role, Tenant

INVITATION_LIFETIME = timedelta(days=7)


class NotAllowed(Exception):
    """The acting member's role does not allow this (403)."""


class MembershipError(Exception):
    """The request cannot be done as asked (the message says why; 400/409)."""


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # goes into the email link only


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lock_plan(tenant: Tenant):
    return Subscription.objects.select_for_update().select_related("plan").get(tenant=tenant).plan


def pending_invitations(tenant: Tenant):
    return Invitation.objects.filter(tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True,
                                     expires_at__gt=timezone.now())


def check_may_grant(actor: Membership, role: str) -> None:
    if actor.role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only owners and admins manage members.")
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise NotAllowed("Only an owner can make someone an owner.")


def seats_taken(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant).count() + pending_invitations(tenant).count()


@transaction.atomic
def invite_member(tenant: Tenant, email: str, role: str, *, actor: Membership) -> IssuedInvitation:
    """An invitation for ``email``; members plus pending invitations stay within plan.max_members."""
    check_may_grant(actor, role)
    email = email.strip().lower()
    plan = lock_plan(tenant)
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise MembershipError(f"{email} is a member of {tenant.name} already.")
    if pending_invitations(tenant).filter(email__iexact=email).exists():
        raise MembershipError(f"{email} has a pending invitation already: revoke it to send a new one.")
    taken = seats_taken(tenant)
    if taken >= plan.max_members:
        raise MembershipError(
            f"Plan {plan.name} allows {plan.max_members} members and {tenant.name} has {taken} "
            "(pending invitations included). Remove a member, revoke an invitation or upgrade the plan.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant, email=email, role=role, token_hash=hash_token(token), invited_by=actor.user,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    return IssuedInvitation(invitation, token)


def find_invitation(token: str) -> Invitation | None:
    """The invitation a link's token stands for, whatever its state (the page says which)."""
    return Invitation.objects.select_related("tenant").filter(token_hash=hash_token(token)).first()


def is_open(invitation: Invitation) -> bool:
    return (invitation.accepted_at is None and invitation.revoked_at is None
            and invitation.expires_at > timezone.now())


@transaction.atomic
def accept_invitation(token: str, user) -> Membership:
    """``user`` (whose email the invitation names) joins the tenant with the invitation's role."""
    invitation = Invitation.objects.select_for_update().filter(token_hash=hash_token(token)).first()
    if invitation is None or not is_open(invitation):
        raise MembershipError("This invitation is no longer valid: ask for a new one.")
    if (user.email or "").lower() != invitation.email.lower():
        raise NotAllowed(f"This invitation is for {invitation.email}; you are signed in as {user.email}.")
    lock_plan(invitation.tenant)
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    try:
        with transaction.atomic():
            return Membership.objects.create(tenant=invitation.tenant, user=user, role=invitation.role)
    except IntegrityError as exc:
        raise MembershipError(f"You are a member of {invitation.tenant.name} already.") from exc


@transaction.atomic
def join_with_new_account(token: str, *, password: str) -> Membership:
    """Create the invited person's account (the link proves the mailbox), then accept."""
    invitation = find_invitation(token)
    if invitation is None or not is_open(invitation):
        raise MembershipError("This invitation is no longer valid: ask for a new one.")
    User = get_user_model()
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise MembershipError(f"An account for {invitation.email} exists already: log in to accept.")
    user = User.objects.create_user(username=invitation.email, email=invitation.email, password=password)
    return accept_invitation(token, user)


def lock_member(tenant: Tenant, membership_id: int) -> Membership:
    return Membership.objects.select_for_update().select_related("user").get(tenant=tenant, pk=membership_id)


def owner_count(tenant: Tenant) -> int:
    return len(Membership.objects.select_for_update().filter(tenant=tenant, role=Role.OWNER))


@transaction.atomic
def change_role(tenant: Tenant, membership_id: int, role: str, *, actor: Membership) -> Membership:
    target = lock_member(tenant, membership_id)
    check_may_grant(actor, role)
    if target.role == Role.OWNER and actor.role != Role.OWNER:
        raise NotAllowed("Only an owner can change an owner's role.")
    if target.role == Role.OWNER and role != Role.OWNER and owner_count(tenant) == 1:
        raise MembershipError(f"{target.user.email} is the last owner of {tenant.name}: make someone else "
                              "an owner first.")
    target.role = role
    target.save(update_fields=["role"])
    if role not in MANAGERS:
        withdraw_scope_from_keys_created_by(tenant, target.user, MANAGEMENT_SCOPE)
    return target


@transaction.atomic
def remove_member(tenant: Tenant, membership_id: int, *, actor: Membership) -> Membership:
    """Owners and admins remove members; anyone may leave (remove themselves)."""
    target = lock_member(tenant, membership_id)
    if target.pk != actor.pk:
        if actor.role not in (Role.OWNER, Role.ADMIN):
            raise NotAllowed("Only owners and admins remove members.")
        if target.role == Role.OWNER and actor.role != Role.OWNER:
            raise NotAllowed("Only an owner can remove an owner.")
    if target.role == Role.OWNER and owner_count(tenant) == 1:
        raise MembershipError(f"{target.user.email} is the last owner of {tenant.name} and cannot leave: "
                              "make someone else an owner first.")
    target.delete()
    revoke_keys_created_by(tenant, target.user)
    return target


@transaction.atomic
def revoke_invitation(tenant: Tenant, invitation_id: int, *, actor: Membership) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(tenant=tenant, pk=invitation_id)
    check_may_grant(actor, invitation.role)
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation
