"""The management API: a tenant's keys, members, usage, plan and billing, under /api/tenants/<slug>/.

Views are thin: resolve the caller (permissions.resolve_actor: 404 for outsiders), check the
role for the method (403 naming who may), load tenant data through gateway.access, change
state through the named workflows the dashboard uses too (issue_api_key, revoke_api_key,
gateway.dashboard.memberships, billing.subscriptions), answer with a serializer.

One module per noun: tenants (also the base views), keys, members (and invitations), usage,
billing (the plan and Stripe links), budgets (end users' budgets; a key's is on the key), alerts
(spend alerts, their webhook and delivery log), cache (the answer cache's settings, a key's own
switch, hit rate and savings).
"""
