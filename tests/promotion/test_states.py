"""Version states on both backends: challenge, promote (atomic, recorded), rollback, retire."""

from __future__ import annotations

import threading

import pytest

from watchkeeper.errors import InputError
from watchkeeper.store import promotion as states
from watchkeeper.store.state import ConflictError, NotFoundError, Store


def state_of(store: Store) -> dict[str, tuple[str, str | None, float | None]]:
    return {
        s["version"]: (s["state"], s["mode"], s["share"]) for s in states.states(store, "churn")
    }


def test_new_versions_are_registered_beside_the_champion(store: Store) -> None:
    assert state_of(store) == {
        "v1": ("champion", None, None),
        "v2": ("registered", None, None),
        "v3": ("registered", None, None),
    }


def test_challengers_in_shadow_and_canary(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    states.challenge(store, "churn", "v3", mode="canary", share=0.25, entity_key="customer")
    assert state_of(store) == {
        "v1": ("champion", None, None),
        "v2": ("challenger", "shadow", None),
        "v3": ("challenger", "canary", 0.25),
    }
    assert [c["entity_key"] for c in states.challengers(store, "churn")] == [None, "customer"]
    assert [c["action"] for c in states.changes(store, "churn")] == [
        "shadow_started",
        "canary_started",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "mirror"}, "mode 'mirror': use one of shadow, canary"),
        ({"mode": "canary"}, "share None: a canary answers a share between 0 and 1"),
        ({"mode": "canary", "share": 1.5}, "share 1.5"),
        ({"mode": "shadow", "share": 0.5}, "share: only a canary"),
    ],
)
def test_a_bad_challenge_names_the_field(
    store: Store, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        states.challenge(store, "churn", "v2", **kwargs)  # type: ignore[arg-type]


def test_canary_shares_add_up_to_at_most_one(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="canary", share=0.6)
    with pytest.raises(InputError, match=r"answer 0\.6 of the requests already"):
        states.challenge(store, "churn", "v3", mode="canary", share=0.5)
    states.challenge(store, "churn", "v2", mode="canary", share=0.3)  # its own share changes
    states.challenge(store, "churn", "v3", mode="canary", share=0.5)


def test_the_champion_cannot_challenge_or_retire(store: Store) -> None:
    with pytest.raises(ConflictError, match="'v1' is the champion"):
        states.challenge(store, "churn", "v1", mode="shadow")
    with pytest.raises(ConflictError, match="promote another first"):
        states.retire(store, "churn", "v1")
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        states.promote(store, "churn", "v9")


def test_promotion_records_the_previous_champion_and_rollback_restores_it(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    assert states.promote(store, "churn", "v2") == {
        "model": "churn",
        "champion": "v2",
        "previous": "v1",
    }
    assert store.model("churn").champion == "v2"
    assert state_of(store)["v1"][0] == "retired" and state_of(store)["v2"][0] == "champion"
    states.challenge(store, "churn", "v3", mode="shadow")
    states.promote(store, "churn", "v3")
    # rollback walks back the promotions one by one
    assert states.rollback(store, "churn")["champion"] == "v2"
    assert states.rollback(store, "churn") == {"model": "churn", "champion": "v1", "previous": "v2"}
    assert state_of(store) == {
        "v1": ("champion", None, None),
        "v2": ("retired", None, None),
        "v3": ("retired", None, None),
    }
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        states.rollback(store, "churn")
    changes = [(c["action"], c["version"], c["previous"]) for c in states.changes(store, "churn")]
    assert changes == [
        ("shadow_started", "v2", None),
        ("promoted", "v2", "v1"),
        ("shadow_started", "v3", None),
        ("promoted", "v3", "v2"),
        ("rolled_back", "v2", "v3"),
        ("rolled_back", "v1", "v2"),
    ]


def test_a_retired_version_is_not_promoted_without_a_new_challenge(store: Store) -> None:
    states.retire(store, "churn", "v2")
    with pytest.raises(ConflictError, match="is retired: make it a challenger first"):
        states.promote(store, "churn", "v2")
    states.challenge(store, "churn", "v2", mode="shadow")
    states.promote(store, "churn", "v2")
    assert store.model("churn").champion == "v2"


def test_concurrent_promotions_leave_one_consistent_champion(store: Store) -> None:
    """Two admins promoting at once: each swap is one transaction, so every recorded
    promotion's ``previous`` is the champion the one before it left."""
    errors: list[Exception] = []

    def swap(version: str) -> None:
        for _ in range(5):
            try:
                states.challenge(store, "churn", version, mode="shadow")
                states.promote(store, "churn", version)
            except ConflictError:
                pass  # the other thread made it champion meanwhile
            except Exception as exc:  # pragma: no cover - the failure this test looks for
                errors.append(exc)

    threads = [threading.Thread(target=swap, args=(v,)) for v in ("v2", "v3")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    champion = "v1"
    for c in states.changes(store, "churn"):
        if c["action"] == "promoted":
            assert c["previous"] == champion
            champion = c["version"]
    assert store.model("churn").champion == champion
