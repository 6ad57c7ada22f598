"""A tenant's budgets per end user (the request's ``user``, or x-tollgate-user): list with what
each period has spent, create, read, change, delete. Everyone reads; owners and admins change
(billing.spend_budgets, as the dashboard's budgets page does). A key's budget is on the key."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from billing.budget_models import SpendBudget
from billing.spend_budgets import (
    BudgetExists,
    InvalidBudget,
    add_end_user_budget,
    change_budget,
    remove_budget,
    standings,
)
from gateway.access import get_end_user_budget_for_tenant, get_end_user_budgets_for_tenant
from gateway.api import serializers as api
from gateway.api.errors import Conflict, errors
from gateway.api.permissions import EVERYONE, MANAGERS
from gateway.api.views.tenants import TenantView

ABOUT = ("A request whose end user has spent (or holds in requests in flight) the budget of the current period "
         "gets 429 insufficient_quota naming the budget and when it resets.")


def bodies(budgets: list[SpendBudget]) -> list[dict]:
    return [{**api.standing_body(standing), "id": standing.budget.pk, "end_user": standing.budget.subject,
             "created_at": standing.budget.created_at, "updated_at": standing.budget.updated_at}
            for standing in standings(budgets)]


def invalid(exc: InvalidBudget) -> exceptions.ValidationError:
    return exceptions.ValidationError({exc.field: [str(exc)]})


class BudgetListView(TenantView):
    roles = {"GET": (EVERYONE, "reading budgets"), "POST": (MANAGERS, "setting budgets")}

    @extend_schema(summary="End users' budgets", tags=["budgets"],
                   responses={200: api.EndUserBudgetSerializer(many=True), **errors()},
                   description=f"Every end user's budget with its current period, by end user. {ABOUT}")
    def get(self, request, slug: str):
        budgets = get_end_user_budgets_for_tenant(self.actor.tenant)
        return Response(api.EndUserBudgetSerializer(bodies(budgets), many=True).data)

    @extend_schema(summary="Give an end user a budget", tags=["budgets"], request=api.EndUserBudgetRequestSerializer,
                   responses={201: api.EndUserBudgetSerializer, **errors(400, 409)},
                   description=f"409 when the end user has a budget already (PATCH it). {ABOUT}")
    def post(self, request, slug: str):
        form = api.EndUserBudgetRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = form.validated_data
        try:
            budget = add_end_user_budget(self.actor.tenant, end_user=fields["end_user"], amount=fields["amount"],
                                         period=fields["period"])
        except InvalidBudget as exc:
            raise invalid(exc) from exc
        except BudgetExists as exc:
            raise Conflict(str(exc)) from exc
        return Response(api.EndUserBudgetSerializer(bodies([budget])[0]).data, status=status.HTTP_201_CREATED)


class BudgetDetailView(TenantView):
    roles = {"GET": (EVERYONE, "reading budgets"), "PATCH": (MANAGERS, "changing budgets"),
             "DELETE": (MANAGERS, "removing budgets")}

    def budget(self, budget_id: int) -> SpendBudget:
        try:
            return get_end_user_budget_for_tenant(self.actor.tenant, budget_id)
        except SpendBudget.DoesNotExist as exc:
            raise exceptions.NotFound(f"No end-user budget {budget_id} in {self.actor.tenant.slug}.") from exc

    @extend_schema(summary="One end user's budget", tags=["budgets"],
                   responses={200: api.EndUserBudgetSerializer, **errors()})
    def get(self, request, slug: str, budget_id: int):
        return Response(api.EndUserBudgetSerializer(bodies([self.budget(budget_id)])[0]).data)

    @extend_schema(summary="Change an end user's budget", tags=["budgets"],
                   request=api.EndUserBudgetUpdateSerializer,
                   responses={200: api.EndUserBudgetSerializer, **errors(400)},
                   description="Fields left out stay. A new period starts its own ledger; a lower amount applies to "
                               "the next request.")
    def patch(self, request, slug: str, budget_id: int):
        budget = self.budget(budget_id)
        form = api.EndUserBudgetUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            change_budget(budget, **form.validated_data)
        except InvalidBudget as exc:
            raise invalid(exc) from exc
        return Response(api.EndUserBudgetSerializer(bodies([budget])[0]).data)

    @extend_schema(summary="Remove an end user's budget", tags=["budgets"], request=None,
                   responses={204: None, **errors()})
    def delete(self, request, slug: str, budget_id: int):
        remove_budget(self.budget(budget_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
