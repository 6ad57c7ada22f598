"""The invitation mail: a link to accept, sent to the invited address (dashboard and API alike)."""

from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from gateway.tenancy.memberships import IssuedInvitation


def send_invitation(base_url: str, issued: IssuedInvitation) -> None:
    """Mail the invitation; ``base_url`` is the gateway as the inviter reached it (the link's host)."""
    invitation = issued.invitation
    link = base_url + reverse("invitation-accept", args=[issued.token])
    send_mail(
        subject=f"Join {invitation.tenant.name} on Tollgate",
        message=render_to_string("dashboard/email/invitation.txt", {"invitation": invitation, "link": link}),
        from_email=None,
        recipient_list=[invitation.email],
    )
