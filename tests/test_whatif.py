"""The cost what-if from real traffic: the tokens of every served request, each model's price,
the cache's measured hit rate, and routing easy requests to a cheaper model."""

from __future__ import annotations

import json
import math
import time

import pytest

from production import PRICE_IN, PRICE_OUT
from workbench.whatif import DAYS_PER_MONTH, WhatIfError, cost_what_if, traffic_tokens


def _calls(project) -> dict[str, tuple[int, int]]:
    """Tokens per trace, read straight from the model-call spans."""
    out: dict[str, list[int]] = {}
    for row in project.store.query("SELECT trace_id, attributes FROM spans "
                                   "WHERE name = 'llm.call'"):
        a = json.loads(row["attributes"])
        if a.get("gen_ai.usage.input_tokens") is not None:
            seen = out.setdefault(row["trace_id"], [0, 0])
            seen[0] += a["gen_ai.usage.input_tokens"]
            seen[1] += a["gen_ai.usage.output_tokens"]
    return {k: (v[0], v[1]) for k, v in out.items()}


def test_every_answered_request_with_the_tokens_of_its_calls(shop):
    traffic = traffic_tokens(shop.project)
    # 5 refunds + 4 charges + 2 unparsable + 8 test questions answered; crashes are not.
    assert len(traffic) == 19
    calls = _calls(shop.project)
    for row in traffic.to_dict("records"):
        assert (row["input_tokens"], row["output_tokens"]) == calls[row["trace_id"]]
    garbled = traffic[traffic["output"].str.contains("ツ", na=False)]
    assert len(garbled) == 2  # a repair turn: its tokens counted too
    assert all(row["input_tokens"] > traffic["input_tokens"].median() for row in
               garbled.to_dict("records"))


def test_the_scenarios_price_the_measured_traffic(shop, fake_model):
    fake_model("tiny", ["billing"], input_cost_per_token=PRICE_IN / 10,
               output_cost_per_token=PRICE_OUT / 10)
    plan = cost_what_if(shop.project, models=["fake/tiny", "fake/echo"], short_tokens=60)
    traffic = plan.traffic
    frame = plan.frame.set_index("scenario")
    observed = (plan.until - traffic["time"].min()) / 86400
    assert plan.requests_per_month == pytest.approx(19 / max(observed, 1 / 24) * DAYS_PER_MONTH)
    assert plan.cache_hit_rate == pytest.approx(traffic["cached"].mean())
    per_request = (traffic["input_tokens"] * PRICE_IN + traffic["output_tokens"] * PRICE_OUT
                   ).mean()
    shop_row = frame.loc["all on fake/shop"]
    assert shop_row["cost_per_request"] == pytest.approx(per_request)
    assert shop_row["monthly_cost"] == pytest.approx(per_request * plan.requests_per_month)
    assert shop_row["monthly_cost_with_cache"] == pytest.approx(
        shop_row["monthly_cost"] * (1 - plan.cache_hit_rate))
    assert shop_row["price_in_per_1m"] == pytest.approx(1.0)
    assert frame.loc["all on fake/tiny", "cost_per_request"] == pytest.approx(per_request / 10)
    assert frame.loc["all on fake/echo", "monthly_cost"] == 0  # free: it is the cheapest
    served = frame.loc["as served (measured)"]
    recorded = [c for c in traffic["cost_usd"] if c is not None]
    assert served["cost_per_request"] == pytest.approx(sum(recorded) / len(recorded))
    # Routing goes to the cheapest choice; a request is short at <= 60 input tokens.
    [routed] = [s for s in frame.index if s.startswith("route inputs")]
    assert "fake/echo" in routed and "60 tokens" in routed
    short = traffic["input_tokens"] <= 60
    assert frame.loc[routed, "routed_share"] == pytest.approx(short.mean())
    expected = ((traffic["input_tokens"] * PRICE_IN + traffic["output_tokens"] * PRICE_OUT)
                * ~short).mean()
    assert frame.loc[routed, "cost_per_request"] == pytest.approx(expected)
    # The card's expected 3000 requests a day, with the cache.
    assert shop_row["monthly_cost_at_card_traffic"] == pytest.approx(
        per_request * 3000 * DAYS_PER_MONTH * (1 - plan.cache_hit_rate))
    assert plan.budget_usd == 200
    figure = plan.figure()
    assert len(figure.data) == 2 and figure.layout.shapes  # the budget line
    assert "answered requests" in plan.sentence and "$200.00" in plan.sentence


def test_a_cascade_measures_how_often_the_cheap_model_answers(shop, fake_model):
    fake_model("tiny", lambda messages: "billing" if "refund" in
               messages[-1]["content"].lower() else "no idea at all",
               input_cost_per_token=PRICE_IN / 10, output_cost_per_token=PRICE_OUT / 10)
    plan = cost_what_if(shop.project, models=["fake/tiny"], confident_sample=19)
    cascade = plan.cascade
    assert cascade["tried"] == 19 and cascade["model"] == "fake/tiny"
    # It answers the 5 refund complaints validly; served said "other" there: no agreement.
    assert cascade["confident"] == 5 and cascade["agreed"] == 0
    row = plan.frame.set_index("scenario").loc["cascade: fake/tiny first"]
    assert row["routed_share"] == pytest.approx(5 / 19)
    per = plan.frame.set_index("scenario")["cost_per_request"]
    assert row["cost_per_request"] == pytest.approx(
        per["all on fake/tiny"] + (1 - 5 / 19) * per["all on fake/shop"])


def test_no_traffic_and_bad_windows(shop):
    quiet = cost_what_if(shop.project, models=[], since=time.time() - 60,
                         until=time.time() - 30)
    assert quiet.frame.empty and quiet.sentence.startswith("No answered request")
    assert math.isnan(quiet.cache_hit_rate)
    with pytest.raises(WhatIfError, match="window is empty"):
        cost_what_if(shop.project, since=5, until=1)
    with pytest.raises(WhatIfError, match="negative"):
        cost_what_if(shop.project, confident_sample=-1)
