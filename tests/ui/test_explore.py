"""Explore's bookkeeping: requests of at most eight consecutive seeds, choosing, finishing in batches."""
from types import SimpleNamespace

from ui import explore


def entry(seed):
    return {"composition": SimpleNamespace(request=SimpleNamespace(seed=seed)), "preview": f"p{seed}", "extra": {}}


def test_an_exploration_is_requests_of_up_to_eight_consecutive_seeds():
    assert explore.batches(100, 20) == [(100, 8), (108, 8), (116, 4)]
    assert explore.batches(5, 3) == [(5, 3)]


def test_choosing_marks_the_preview_and_counts_on_the_finish_button():
    explored = [entry(s) for s in (7, 8, 9)]
    picked = explore.toggle(explore.toggle([], 2), 0)
    assert picked == [0, 2] and explore.toggle(picked, 2) == [0]
    assert explore.gallery_value(explored, picked) == [("p7", "✓ seed 7"), ("p8", "seed 8"), ("p9", "✓ seed 9")]
    assert explore.finish_label(picked) == "Finish chosen (2)" and explore.finish_label([]) == "Finish chosen"


def test_the_chosen_finish_in_batches_of_eight_in_their_order():
    explored = [entry(s) for s in range(20)]
    groups = explore.finish_groups(explored, list(range(0, 20, 2)) + [99])  # an index past the end is ignored
    assert [[e["composition"].request.seed for e in g] for g in groups] == [[0, 2, 4, 6, 8, 10, 12, 14], [16, 18]]
