"""The members page (invite, change role, remove, revoke an invitation) and invitation links."""

from django import forms
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from gateway.access import get_members_for_tenant, get_pending_invitations_for_tenant
from gateway.dashboard.accounts import check_new_password
from gateway.dashboard.tenancy import (
    CURRENT_TENANT_SESSION_KEY,
    can_manage_members,
    forbidden,
    tenant_page,
    tenant_url,
)
from gateway.models import Invitation, Membership, Role
from gateway.proxies import public_base_url
from gateway.tenancy import memberships
from gateway.tenancy.invitations import send_invitation
from gateway.tenancy.memberships import MembershipError, NotAllowed


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


def members_url(membership: Membership) -> str:
    return tenant_url(membership.tenant.slug, "members/")


def may_act_on(actor: Membership, role: str) -> bool:
    """What the page offers; the workflows in memberships.py decide again on the server."""
    return can_manage_members(actor) and (actor.role == Role.OWNER or role != Role.OWNER)


def render_members(request, membership: Membership, *, invite_form=None, status: int = 200):
    tenant = membership.tenant
    plan = tenant.subscription.plan
    members = get_members_for_tenant(tenant)
    invitations = get_pending_invitations_for_tenant(tenant)
    open_invitations = [i for i in invitations if memberships.is_open(i)]
    grantable = [(value, label) for value, label in Role.choices if may_act_on(membership, value)]
    return render(request, "dashboard/members.html", {
        "membership": membership,
        "members": [{"member": m, "is_self": m.pk == membership.pk,
                     "may_manage": m.pk != membership.pk and may_act_on(membership, m.role)} for m in members],
        "invitations": [{"invitation": i, "is_open": i in open_invitations,
                         "may_revoke": may_act_on(membership, i.role)} for i in invitations],
        "plan": plan,
        "seats_taken": len(members) + len(open_invitations),
        "can_manage": can_manage_members(membership),
        "grantable_roles": grantable,
        "invite_form": invite_form or InviteForm(),
    }, status=status)


@tenant_page("members")
def members_page(request, membership: Membership):
    return render_members(request, membership)


def refuse(request, membership: Membership, exc: Exception):
    """NotAllowed is the role's limit (403); MembershipError a request that cannot be done (409)."""
    if isinstance(exc, NotAllowed):
        return forbidden(request, membership, str(exc))
    messages.error(request, str(exc))
    return HttpResponseRedirect(members_url(membership))


@require_POST
@tenant_page("members")
def invite(request, membership: Membership):
    form = InviteForm(request.POST)
    if not form.is_valid():
        return render_members(request, membership, invite_form=form, status=400)
    try:
        issued = memberships.invite_member(membership.tenant, form.cleaned_data["email"],
                                           form.cleaned_data["role"], actor=membership)
    except MembershipError as exc:
        form.add_error(None, str(exc))
        return render_members(request, membership, invite_form=form, status=409)
    except NotAllowed as exc:
        return refuse(request, membership, exc)
    send_invitation(public_base_url(request), issued)
    messages.success(request, f"Invitation sent to {issued.invitation.email}.")
    return HttpResponseRedirect(members_url(membership))


@require_POST
@tenant_page("members")
def change_role(request, membership: Membership, membership_id: int):
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return HttpResponseRedirect(members_url(membership))
    try:
        target = memberships.change_role(membership.tenant, membership_id, form.cleaned_data["role"],
                                         actor=membership)
    except Membership.DoesNotExist as exc:
        raise Http404("No such member.") from exc
    except (NotAllowed, MembershipError) as exc:
        return refuse(request, membership, exc)
    messages.success(request, f"{target.user.email} is now {target.get_role_display().lower()}.")
    return HttpResponseRedirect(members_url(membership))


@require_POST
@tenant_page("members")
def remove(request, membership: Membership, membership_id: int):
    try:
        target = memberships.remove_member(membership.tenant, membership_id, actor=membership)
    except Membership.DoesNotExist as exc:
        raise Http404("No such member.") from exc
    except (NotAllowed, MembershipError) as exc:
        return refuse(request, membership, exc)
    if membership_id == membership.pk:
        request.session.pop(CURRENT_TENANT_SESSION_KEY, None)
        messages.success(request, f"You left {membership.tenant.name}.")
        return HttpResponseRedirect(reverse("dashboard"))
    messages.success(request, f"{target.user.email} was removed from {membership.tenant.name}.")
    return HttpResponseRedirect(members_url(membership))


@require_POST
@tenant_page("members")
def revoke_invitation(request, membership: Membership, invitation_id: int):
    try:
        invitation = memberships.revoke_invitation(membership.tenant, invitation_id, actor=membership)
    except Invitation.DoesNotExist as exc:
        raise Http404("No such invitation.") from exc
    except NotAllowed as exc:
        return refuse(request, membership, exc)
    messages.success(request, f"The invitation for {invitation.email} was revoked.")
    return HttpResponseRedirect(members_url(membership))


class JoinForm(forms.Form):
    password1 = forms.CharField(label="Choose a password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        cleaned = super().clean()
        check_new_password(self, email=self.email)
        return cleaned


def accept_invitation(request, token: str):
    """The link in the email. Signed in with the invited address: join. Signed out: log in (then
    come back) or, with no account yet, choose a password and join at once."""
    invitation = memberships.find_invitation(token)
    if invitation is None:
        raise Http404("No such invitation.")
    context = {"invitation": invitation, "is_open": memberships.is_open(invitation)}
    user = request.user
    if not context["is_open"]:
        return render(request, "dashboard/invitation.html", context, status=410)
    if user.is_authenticated:
        context["matches"] = (user.email or "").lower() == invitation.email.lower()
        if request.method == "POST" and context["matches"]:
            try:
                joined = memberships.accept_invitation(token, user)
            except (MembershipError, NotAllowed) as exc:
                context["error"] = str(exc)
                return render(request, "dashboard/invitation.html", context, status=409)
            return joined_response(request, joined)
        return render(request, "dashboard/invitation.html", context, status=200 if context["matches"] else 403)
    has_account = get_user_model().objects.filter(email__iexact=invitation.email).exists()
    form = JoinForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and not has_account and form.is_valid():
        try:
            joined = memberships.join_with_new_account(token, password=form.cleaned_data["password1"])
        except MembershipError as exc:
            form.add_error(None, str(exc))
        else:
            auth.login(request, joined.user, backend="django.contrib.auth.backends.ModelBackend")
            return joined_response(request, joined)
    context.update({"has_account": has_account, "form": form,
                    "login_url": f"{reverse('login')}?next={request.path}"})
    return render(request, "dashboard/invitation.html", context)


def joined_response(request, joined: Membership):
    request.session[CURRENT_TENANT_SESSION_KEY] = joined.tenant.slug
    messages.success(request, f"Welcome to {joined.tenant.name}: you joined as {joined.get_role_display().lower()}.")
    return HttpResponseRedirect(tenant_url(joined.tenant.slug))
