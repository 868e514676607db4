"""Trustability from control/consistency questions (iHEARu-PLAY, section 2.3) and spammer detection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from listenloop.bench.spammers import campaign
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.trust import (
    CONSISTENCY_PASS_WEIGHT,
    CONTROL_WEIGHT,
    PRIOR_STRENGTH,
    PRIOR_TRUST,
    SPAMMER_COLUMNS,
    check_answers,
    check_weight,
    detect_spammers,
    pair_kappa,
    revert_trust,
    trust_from_answers,
    update_trust,
)
from listenloop.errors import ListenloopError
from test_crowd_mace_glad import GOOD, synthetic_crowd


def test_update_rule_by_hand() -> None:
    t = 0.5  # prior mean 0.5, strength 4
    t = update_trust(t, True, 0)  # (0.5*4 + 1) / 5
    assert t == pytest.approx(0.6)
    t = update_trust(t, False, 1)  # (0.6*5 + 0) / 6
    assert t == pytest.approx(0.5)
    t = update_trust(t, True, 2)  # (0.5*6 + 1) / 7
    assert t == pytest.approx(4 / 7)


def test_prior_is_an_unknown_workers_accuracy_that_failed_checks_undo() -> None:
    """The one prior: three agreeing binary answers of new workers are evidence enough, yet a
    worker who fails their first checks drops below the default trust threshold (0.5)."""
    from listenloop.crowd.redundancy import DynamicPolicy

    policy = DynamicPolicy(min_answers=2, max_answers=9, tau=0.95, untrusted_below=0.5)
    new = np.full(3, PRIOR_TRUST)
    done = policy.decide(np.array(["1", "1", "1"]), new, ["0", "1"])
    assert done.done and done.label == "1" and done.confidence >= 0.95
    assert not policy.decide(np.array(["1", "1"]), new[:2], ["0", "1"]).done
    t = PRIOR_TRUST
    for n in range(3):  # a spammer fails three checks in a row
        t = update_trust(t, False, n)
    assert t < 0.5
    assert trust_from_answers(
        pd.DataFrame(
            {"item": ["a", "b", "c"], "worker": ["s"] * 3, "label": ["0"] * 3, "kind": ["control"] * 3}
        ),
        {"a": "1", "b": "1", "c": "1"},
    )["s"] == pytest.approx(PRIOR_TRUST * PRIOR_STRENGTH / (PRIOR_STRENGTH + 3))
    assert update_trust(PRIOR_TRUST, True, 0) > PRIOR_TRUST > update_trust(PRIOR_TRUST, False, 0) >= 0.5


def test_revert_takes_the_last_check_back() -> None:
    t, history = 0.5, []
    for n, ok in enumerate([True, False, False, True, True, True, False]):
        history.append(t)
        t = update_trust(t, ok, n)
    for n, ok in reversed(list(enumerate([True, False, False, True, True, True, False]))):
        t = revert_trust(t, ok, n + 1)
        assert t == pytest.approx(history[n])
    with pytest.raises(ListenloopError):
        revert_trust(0.5, True, 0)


def test_right_raises_wrong_lowers_and_bounds() -> None:
    assert update_trust(0.7, True, 3) > 0.7
    assert update_trust(0.7, False, 3) < 0.7
    assert update_trust(1.0, True, 3) == 1.0
    assert update_trust(0.0, False, 3) == 0.0
    t = 0.5
    for n, ok in enumerate([True] * 50 + [False] * 50):
        t = update_trust(t, ok, n)
        assert 0.0 <= t <= 1.0


def test_batch_matches_live() -> None:
    answers = pd.DataFrame(
        {
            "item": ["a", "b", "c", "x", "x", "d"],
            "worker": ["w"] * 5 + ["v"],
            "label": ["1", "0", "1", "1", "0", "0"],
            "kind": ["control", "control", "", "regular", "consistency", "regular"],
        }
    )
    gold = {"a": "1", "b": "1", "c": "1"}
    trust = trust_from_answers(answers, gold)
    live = PRIOR_TRUST
    for n, ok in enumerate([True, False, True, False]):  # a right, b wrong, c (no kind) right, x changed
        live = update_trust(live, ok, n)
    assert trust["w"] == pytest.approx(live)
    assert trust["v"] == PRIOR_TRUST  # nothing checked: the prior


def test_consistency_contradiction_lowers() -> None:
    base = pd.DataFrame({"item": ["x", "x"], "worker": ["w", "w"], "label": ["1", "1"]})
    same = base.assign(kind=["regular", "consistency"])
    changed = same.assign(label=["1", "0"])
    assert trust_from_answers(changed, {})["w"] < PRIOR_TRUST < trust_from_answers(same, {})["w"]


def test_consistency_uses_time_order() -> None:
    answers = pd.DataFrame(
        {
            "item": ["x", "x", "x"],
            "worker": ["w"] * 3,
            "label": ["0", "1", "1"],
            "kind": ["consistency", "regular", "consistency"],
            "time": [3, 1, 2],
        }
    )
    # by time: 1 (regular "1"), 2 (consistency "1": agrees, weight 0.25), 3 (consistency "0":
    # contradicts, weight 1)
    assert trust_from_answers(answers, {})["w"] == pytest.approx(
        (PRIOR_TRUST * PRIOR_STRENGTH + 0.25) / (4 + 1.25)
    )


def test_check_weights_a_consistency_pass_less_than_a_control() -> None:
    assert check_weight("control", True) == check_weight("control", False) == CONTROL_WEIGHT == 1.0
    assert check_weight("consistency", False) == 1.0
    assert 0 < check_weight("consistency", True) == CONSISTENCY_PASS_WEIGHT < 1.0
    with pytest.raises(ListenloopError):
        check_weight("regular", True)
    # by hand: a pass of weight 0.25 on evidence 2 at trust 0.5: (0.5 * 6 + 0.25) / 6.25
    assert update_trust(0.5, True, 2.0, weight=0.25) == pytest.approx(3.25 / 6.25)


def test_weighted_revert_is_exact() -> None:
    steps = [("control", True), ("consistency", True), ("consistency", False), ("control", False)] * 3
    t, evidence, history = 0.5, 0.0, []
    for check, ok in steps:
        history.append((t, evidence))
        w = check_weight(check, ok)
        t, evidence = update_trust(t, ok, evidence, weight=w), evidence + w
    for (check, ok), (before, ev_before) in zip(reversed(steps), reversed(history), strict=True):
        w = check_weight(check, ok)
        t, evidence = revert_trust(t, ok, evidence, weight=w), evidence - w
        assert t == pytest.approx(before, abs=1e-12) and evidence == ev_before
    with pytest.raises(ListenloopError):
        revert_trust(0.5, True, 0.1, weight=1.0)


def test_consistency_passes_do_not_hold_a_constant_answerer_up() -> None:
    """A constant "0" on 10 gold digits: every repeat agrees, 1 control in 10 is right. With
    passes weighing as much as controls it would stay above 0.5; here it falls below."""
    rows = []
    for i in range(30):
        rows.append((f"g{i % 10}", "0", "control"))
        rows += [(f"r{i}", "0", "regular"), (f"r{i}", "0", "consistency"), (f"r{i}x", "0", "regular")]
        rows += [(f"s{i}", "0", "regular"), (f"s{i}", "0", "consistency")]
    answers = pd.DataFrame(rows, columns=["item", "label", "kind"]).assign(worker="c")
    gold = {f"g{d}": str(d) for d in range(10)}
    assert trust_from_answers(answers, gold)["c"] < 0.45
    flat = (0.5 * 4 + 3 + 60) / (4 + 30 + 60)  # what counting every pass as a check gave
    assert flat > 0.5


def test_cant_tell_on_a_control_fails_only_far_above_the_crowd() -> None:
    gold = {f"g{i}": "1" for i in range(5)}
    rows = [("spam", f"g{i}", CANT_TELL, "control") for i in range(5)]
    rows += [("spam", f"r{i}", CANT_TELL, "regular") for i in range(10)]
    rows += [("ok", f"g{i}", "1", "control") for i in range(5)]
    rows += [("ok", f"r{i}", "1" if i else CANT_TELL, "regular") for i in range(10)]
    table = pd.DataFrame(rows, columns=["worker", "item", "label", "kind"])
    checks = check_answers(table, gold)
    assert (checks[checks["worker"] == "spam"]["correct"] == False).sum() == 5  # noqa: E712
    trust = trust_from_answers(table, gold)
    assert trust["spam"] == pytest.approx(PRIOR_TRUST * PRIOR_STRENGTH / (PRIOR_STRENGTH + 5))
    assert trust["spam"] < 0.5 < trust["ok"]
    # a rate like the crowd's: can't tell on a control checks nothing
    honest = table.assign(label=table["label"].where(table["worker"] != "spam", "1"))
    honest.loc[(honest["worker"] == "spam") & (honest["item"] == "g0"), "label"] = CANT_TELL
    spam_checks = check_answers(honest, gold).query("worker == 'spam'")
    assert len(spam_checks) == 4 and spam_checks["correct"].all()


def test_detect_spammers_on_synthetic_crowd() -> None:
    answers, _ = synthetic_crowd(seed=2)
    found = detect_spammers(answers)
    assert list(found.columns) == SPAMMER_COLUMNS
    kinds = dict(zip(found["worker"], found["kind"], strict=True))
    assert kinds == {"c0": "constant", "c1": "constant", "r0": "uniform_random", "r1": "uniform_random"}
    assert not set(found["worker"]) & set(GOOD)
    assert found["score"].between(0, 1).all()


def test_detect_spammers_needs_enough_answers() -> None:
    answers, _ = synthetic_crowd(seed=2)
    assert detect_spammers(answers, min_answers=10_000).empty


@pytest.mark.parametrize("seed", range(5))
def test_each_spammer_kind_is_found_within_150_answers(seed: int) -> None:
    """10 classes, 400 clips, 4 honest annotators at 90 % (the adversarial check's setting)."""
    found = detect_spammers(campaign(seed, quota=150))
    kinds = dict(zip(found["worker"], found["kind"], strict=True))
    assert kinds == {"random": "uniform_random", "constant": "constant", "cant": "cant_tell"}
    why = dict(zip(found["worker"], found["reason"], strict=True))
    assert "can't tell to 100%" in why["cant"] and "'0' to 100%" in why["constant"]
    assert why["random"].startswith("answers look random: agreement with the crowd kappa")
    assert (found["answers"] <= 150).all()


def test_spammers_are_found_early_but_newcomers_are_not_judged() -> None:
    early = detect_spammers(campaign(0, quota=60))
    assert set(early["worker"]) == {"random", "constant", "cant"}
    assert detect_spammers(campaign(0, quota=60), min_answers=100).empty  # nobody has 100 answers yet
    few = detect_spammers(campaign(0, quota=10))  # the default min_answers is 20
    assert few.empty


@pytest.mark.parametrize("k", [2, 3, 10])
def test_honest_workers_of_70_to_95_percent_are_not_flagged(k: int) -> None:
    for seed in range(4):
        answers = campaign(
            100 + seed, k=k, honest=(0.7, 0.7, 0.75, 0.8, 0.9, 0.95), spam=(), quota=2000, items=2000
        )
        assert detect_spammers(answers).empty, (k, seed)


def test_cant_tell_is_judged_against_the_crowd_share() -> None:
    """An honest worker who says can't tell a little more than the crowd is no spammer; one
    who says it to most clips is; and can't tell never counts as a class in the other rules."""
    answers = campaign(3, spam=("cant",), quota=150)
    cant = answers["worker"] == "cant"
    some = answers[cant].index[::3]  # a third of "cant"'s answers become right class answers
    answers.loc[some, "label"] = "0"
    answers.loc[answers.index[~cant][::10], "label"] = CANT_TELL  # the crowd says it to ~10 %
    found = detect_spammers(answers)
    assert list(found["kind"]) == ["cant_tell"] and found["score"].iloc[0] == pytest.approx(2 / 3, abs=0.02)
    mild = campaign(4, spam=(), quota=150)
    mild.loc[mild.index[mild["worker"] == "h0"][::5], "label"] = CANT_TELL  # 20 % against 0 %
    assert detect_spammers(mild).empty


def test_pair_kappa() -> None:
    assert pair_kappa(0.7, 2) == pytest.approx(0.16)
    assert pair_kappa(0.7, 10) == pytest.approx((0.49 + 0.09 / 9 - 0.1) / 0.9)
    assert pair_kappa(1.0 / 3, 3) == pytest.approx(0.0)
