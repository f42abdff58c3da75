"""The v2 study's parts without training: the name split, claim decisions, name-group scores, the bag-of-words
reference (with negative controls: a claim whose interval straddles its margin is not decided; shuffled labels
leave the reference at chance)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is run from the repository root, not installed
    sys.path.insert(0, str(ROOT))

from experiments.replication.v2 import analysis  # noqa: E402
from experiments.replication.v2.names import NameSplit, draw_name_split  # noqa: E402
from mlac.data.synth import name_pools  # noqa: E402


def test_name_split_is_disjoint_covers_each_pool_and_is_seeded():
    split = draw_name_split(0.5)
    assert split.seen and split.unseen and not split.seen & split.unseen
    for pool in name_pools().values():
        names = set(pool) - (split.seen & split.unseen)
        assert names & split.seen and names & split.unseen  # each gender has names on both sides
    assert draw_name_split(0.5) == split
    assert draw_name_split(0.5, seed=1) != split
    with pytest.raises(ValueError):
        draw_name_split(1.0)


def test_a_bio_is_grouped_by_the_first_pool_name_it_mentions():
    split = NameSplit(seen=frozenset({"Ann"}), unseen=frozenset({"Bob"}))
    assert split.group("In their free time, Ann hikes with Bob.") == "seen"
    assert split.group("Bob Smith works with Ann.") == "unseen"
    assert split.group("They work at Acme in Springfield.") == "none"
    assert split.rows(["Ann x", "Bob y", "nobody"], "unseen") == [1]


@pytest.mark.parametrize(("ci", "lower", "margin", "expected"), [
    ((-0.10, -0.02), True, 0.0, "yes"),            # MLAC lower than the base: the whole interval below 0
    ((-0.10, 0.02), True, 0.0, "not decided"),     # straddles 0: nothing decided (negative control)
    ((0.01, 0.05), True, 0.0, "no"),
    ((-0.01, 0.025), True, 0.03, "yes"),           # as hard as random within the margin
    ((-0.01, 0.04), True, 0.03, "not decided"),    # upper end past the margin: not shown equivalent
    ((-0.04, 0.01), False, -0.05, "yes"),          # beneficial kept within 5 points
    ((-0.09, -0.06), False, -0.05, "no"),          # lost more than the margin
    ((-0.09, -0.04), False, -0.05, "not decided"),  # straddles the margin (negative control)
    ((0.031, 0.06), True, 0.03, "no"),             # easier than random by more than the margin
])
def test_a_claim_is_decided_only_by_its_whole_interval(ci, lower, margin, expected):
    assert analysis.claim({"mean": sum(ci) / 2, "ci": list(ci)}, lower_is_claim=lower, margin=margin) == expected
    assert analysis.claim({"mean": 0.0, "ci": None}, lower_is_claim=lower).startswith("not decided")


def _result(values: dict[str, dict[int, list[float]]]) -> dict:
    return {"seed_points": [{"model": m, "task": "harmful", "n": n, "seed": s, "report_accuracy": v}
                            for m, by_n in values.items() for n, vals in by_n.items() for s, v in enumerate(vals)]}


def test_pooled_difference_pairs_by_seed_and_clusters_training_seeds():
    res = _result({"base": {100: [0.80, 0.70, 0.90]}, "m1": {100: [0.60, 0.50, 0.70]}, "m2": {100: [0.70, 0.60, 0.80]}})
    row = analysis.pooled_difference(res, ["m1", "m2"], "base", "harmful", [100])[0]
    assert row["mean"] == pytest.approx(-0.15)
    assert row["clusters"] == 2 and row["k"] == 6
    # The seed-to-seed spread cancels in the pairing: each model's difference is constant, so only the two
    # training seeds' means (-0.2, -0.1) spread the interval.
    lo, hi = row["ci"]
    assert lo < -0.2 and hi > -0.1 and hi < 0.5


def test_group_accuracies_split_the_report_rows_by_name(tmp_path):
    path = tmp_path / "samples.csv"
    lines = ["model,task,n,seed,rerun,example_id,text,true_label,predicted_label,correct"]
    for rerun in (0, 1):
        lines += [f"mlac,harmful,20,0,{rerun},a,x,f,f,1", f"mlac,harmful,20,0,{rerun},b,x,f,m,0",
                  f"mlac,harmful,20,0,{rerun},c,x,m,m,{rerun}"]
    path.write_text("\n".join(lines) + "\n")
    acc = analysis.group_accuracies(path, {"a": "seen", "b": "unseen", "c": "unseen"})
    assert acc[("mlac", "harmful", 20, 0, "seen")] == 1.0
    assert acc[("mlac", "harmful", 20, 0, "unseen")] == pytest.approx(0.25)  # (0/2 + 1/2) / 2 reruns


def test_bag_of_words_learns_a_word_cue_and_stays_at_chance_on_shuffled_labels():
    from experiments.replication.v2.attacks import _logistic, _presence, _words

    rng = random.Random(0)
    texts = [f"{rng.choice(['she', 'he'])} works {rng.choice(['here', 'there'])}" for _ in range(400)]
    labels = [int(t.startswith("she")) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted(set().union(*(_words(t) for t in texts[:200]))))}
    import torch

    x, xt = _presence(texts[:200], vocab), _presence(texts[200:], vocab)
    head = _logistic(x, torch.tensor(labels[:200]), 1e-3, 100)
    acc = float((head(xt).argmax(1) == torch.tensor(labels[200:])).float().mean())
    shuffled = labels[:200]
    rng.shuffle(shuffled)
    control = _logistic(x, torch.tensor(shuffled), 1e-3, 100)
    acc_control = float((control(xt).argmax(1) == torch.tensor(labels[200:])).float().mean())
    assert acc > 0.95
    assert abs(acc_control - 0.5) < 0.15
