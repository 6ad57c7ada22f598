"""The default plans (plans.yaml), created by bootstrap when missing."""

from decimal import Decimal
from pathlib import Path

import yaml

from billing.models import Plan

PLANS_PATH = Path(__file__).with_name("plans.yaml")


def seed_plans(path: Path = PLANS_PATH) -> list[str]:
    notes = []
    for entry in yaml.safe_load(path.read_text())["plans"]:
        defaults = dict(entry)
        slug = defaults.pop("slug")
        defaults["monthly_price"] = Decimal(defaults["monthly_price"])
        if defaults.get("monthly_spend_limit") is not None:
            defaults["monthly_spend_limit"] = Decimal(defaults["monthly_spend_limit"])
        _, created = Plan.objects.get_or_create(slug=slug, defaults=defaults)
        if created:
            notes.append(f"added plan {slug}")
    return notes
