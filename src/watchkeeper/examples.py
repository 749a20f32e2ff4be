"""Example data: a churn model's training reference and a production window that has drifted.

The current window differs from the reference in known ways, so a report on it has a right
answer: ``income`` is shifted up by about 15 %, ``credit_score`` is wider, the ``country`` mix
moves towards ``"ES"``, ``plan`` has a category never seen in training (``"family"``), and the
relation between features and churn changes, so the model's accuracy drops. Every other
feature is drawn from the same distribution as in the reference.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

DRIFTED = ("income", "credit_score", "country", "plan")
COUNTRIES = ("DE", "FR", "ES", "IT", "NL", "PL")
PLANS = ("basic", "plus", "pro")


def _frame(
    rng: np.random.Generator,
    n: int,
    start: datetime,
    *,
    drifted: bool | float,
    first_id: int,
    span_seconds: float = 7 * 86400,
    concept: float | None = None,
    aged: float = 0.0,
) -> pa.Table:
    """``drifted``: 0 (False) is the training distribution, 1 (True) the full documented drift,
    anything between a partial one; ``concept`` (default: the same) scales the change of the
    feature → churn relation; ``aged`` (0 to 1) makes customers older (mean age 41 → 65): a
    covariate shift, P(churn | x) unchanged, that puts more of them near the model's decision
    boundary, so its accuracy falls and can be estimated without
    labels (the same draws for any value: 0 changes nothing)."""
    d = float(drifted)
    c = d if concept is None else concept
    age = np.clip(rng.normal(41 + 24 * aged, 11, n), 18, 90).round()
    income = rng.lognormal(10.4 + 0.14 * d, 0.45, n)
    tenure = rng.gamma(2.0, 14.0, n).round()
    credit = rng.normal(650, 75 * (1 + 0.35 * d), n).round()
    products = rng.choice([1, 2, 3, 4], n, p=[0.5, 0.3, 0.15, 0.05])
    base_p = np.array([0.3, 0.25, 0.12, 0.15, 0.1, 0.08])
    drift_p = np.array([0.24, 0.22, 0.25, 0.13, 0.09, 0.07])
    country = rng.choice(COUNTRIES, n, p=(1 - d) * base_p + d * drift_p)
    plan_names = [*PLANS, "family"]
    plan_p = (1 - d) * np.array([0.5, 0.32, 0.18, 0.0]) + d * np.array([0.45, 0.3, 0.17, 0.08])
    plan = rng.choice(plan_names, n, p=plan_p / plan_p.sum())
    active = rng.random(n) < 0.7
    balance = np.where(rng.random(n) < 0.25, 0.0, rng.normal(75_000, 30_000, n).clip(0))
    balance[rng.random(n) < 0.02] = np.nan  # some missing values, in both frames
    logit = -1.2 + 0.035 * (age - 41) - 0.03 * tenure / 10 - 0.9 * active + 0.25 * (products >= 3)
    score = 1 / (1 + np.exp(-logit))
    true_logit = logit + c * (1.1 * active + 0.02 * (credit - 650) / 10)
    churn = rng.random(n) < 1 / (1 + np.exp(-true_logit))
    seconds = np.sort(rng.uniform(0, span_seconds, n)).astype("timedelta64[s]")
    times = np.datetime64(start.replace(tzinfo=None), "s") + seconds
    return pa.table(
        {
            "customer_id": [f"C{first_id + i:08d}" for i in range(n)],
            "event_time": pa.array(times, type=pa.timestamp("s", tz="UTC")),
            "age": age,
            "income": income.round(2),
            "tenure_months": tenure,
            "credit_score": credit,
            "balance": balance.round(2),
            "num_products": products,
            "country": country,
            "plan": plan,
            "is_active": active,
            "churn_score": score.round(4),
            # the threshold near the churn base rate: a model that does flag churners
            "churn_predicted": (score >= 0.2).astype(np.int64),
            "churned": churn.astype(np.int64),
        }
    )


def churn_example(
    reference_rows: int = 50_000, current_rows: int = 20_000, seed: int = 7
) -> tuple[pa.Table, pa.Table]:
    """(reference, current) tables of the example churn model; seeded, so reports repeat."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 10, 1)
    ref = _frame(rng, reference_rows, t0, drifted=False, first_id=0)
    cur = _frame(rng, current_rows, t0 + timedelta(days=30), drifted=True, first_id=reference_rows)
    return ref, cur
