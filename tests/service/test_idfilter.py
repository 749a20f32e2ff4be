"""The in-memory filter of seen prediction ids: never a false "not seen", rarely a false "seen"."""

from __future__ import annotations

import numpy as np

from watchkeeper.store.idfilter import IdFilter


def test_no_added_id_is_missed_and_false_positives_stay_near_one_percent() -> None:
    rng = np.random.default_rng(7)
    ids = [f"{v:032x}" for v in rng.integers(0, 2**63, 120_000)]
    seen = IdFilter(capacity=1_000)  # small: the filter has to grow several times
    for start in range(0, 60_000, 7_000):
        seen.add(ids[start : min(start + 7_000, 60_000)])
    assert len(seen) == 60_000
    assert seen.may_contain(ids[:60_000]).all()
    false_positive = seen.may_contain(ids[60_000:]).mean()
    assert 0 < false_positive < 0.03, false_positive


def test_repeated_ids_within_one_add_set_every_bit() -> None:
    seen = IdFilter(capacity=16)
    seen.add(["a", "b", "a", "c"] * 3)
    assert seen.may_contain(["a", "b", "c"]).all()
    assert not IdFilter().may_contain(["a"]).any()
