"""Tenancy: who belongs to a tenant and what they may do (memberships, invitations), below the
entry points (v1, dashboard, api), which call it the same way."""
