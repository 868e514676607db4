"""Dynamic redundancy for multi-label items (the tag set's posterior from per-tag posteriors) and
ratings (standard error of the mean weighted by each annotator's noise on control answers), and
the live re-aggregation that applies it (`engine.live.aggregate`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import special

from listenloop.crowd.aggregation.continuous import prior_noise, rating_noise
from listenloop.crowd.redundancy import (
    CANT_TELL,
    DynamicPolicy,
    bayes_posterior,
    default_tolerance,
    rating_estimate,
    tag_accuracy,
    tag_posteriors,
)
from listenloop.crowd.soft_labels import soft_labels
from listenloop.engine.live.aggregate import aggregate_clip
from listenloop.engine.live.views import ProjectView
from listenloop.errors import ListenloopError

POLICY = DynamicPolicy(min_answers=2, max_answers=5, tau=0.95)


def view(task_type: str, **extra: object) -> ProjectView:
    base = dict(
        id=1, owner_id=1, task_type=task_type, classes=[], range_min=None, range_max=None,
        redundancy_min=2, redundancy_max=5, redundancy_tau=0.95, control_rate=0.0, consistency_rate=0.0,
        trust_threshold=0.5, rating_tolerance=None, budget=None, invite_only=False, is_open=True,
        answers_used=0, class_prior=None,
    )  # fmt: skip
    rest = {f.name: 0 for f in dataclasses.fields(ProjectView) if f.name not in base}  # counters added later
    return dataclasses.replace(ProjectView(**base, **rest), **extra)  # type: ignore[arg-type]


TAGS = view("multilabel", classes=["cough", "door", "speech"])
RATING = view("continuous", range_min=-20.0, range_max=20.0)


def test_a_tag_posterior_is_the_binary_one_coin_posterior() -> None:
    votes = np.array([[1, 0], [1, 1], [0, 1], [1, 0]])
    answered = np.array([True, True, True, False])
    q = np.array([0.9, 0.6, 0.8, 0.99])
    post = tag_posteriors(votes, answered, q)
    for tag in range(2):
        codes = np.where(answered, votes[:, tag], -1)  # class 1 = present; can't-tell names none
        assert post[tag] == pytest.approx(bayes_posterior(codes, q, 2)[1])


def test_trust_on_whole_tag_sets_is_a_higher_accuracy_per_tag() -> None:
    assert tag_accuracy(np.array([0.5, 0.9]), 5) == pytest.approx([0.5**0.2, 0.9**0.2])
    assert tag_accuracy(np.array([0.7]), 1) == pytest.approx([0.7])
    # three newcomers (trust 0.5) who mark the same tags close a 5-tag clip
    votes = np.array([[1, 0, 0, 1, 0]] * 3)
    five = [str(i) for i in range(5)]
    assert not POLICY.decide_tags(votes[:1], np.ones(1, bool), np.full(1, 0.5), five).done
    d = POLICY.decide_tags(votes, np.ones(3, bool), np.full(3, 0.5), five)
    assert d.done and d.label == "0|3"


def test_tags_stop_when_every_tag_is_decided() -> None:
    agree = np.array([[1, 0, 1], [1, 0, 1]])
    d = POLICY.decide_tags(agree, np.ones(2, bool), np.full(2, 0.9), TAGS.classes)
    assert (d.done, d.label, d.low_agreement) == (True, "cough|speech", False) and d.confidence > 0.95
    # one tag split: not done before the maximum, low-agreement at it
    split = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1], [1, 0, 0]])
    d = POLICY.decide_tags(split, np.ones(4, bool), np.full(4, 0.6), TAGS.classes)
    assert not d.done and d.label == "cough"
    five = np.vstack([split, [[1, 0, 0]]])
    d = POLICY.decide_tags(five, np.ones(5, bool), np.full(5, 0.6), TAGS.classes)
    assert d.done and d.low_agreement
    # untrusted answers never close an item alone, and mostly can't-tell never closes one
    d = POLICY.decide_tags(agree, np.ones(2, bool), np.full(2, 0.4), TAGS.classes)
    assert not d.done
    votes = np.array([[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    d = POLICY.decide_tags(votes, np.array([True, False, False, False]), np.full(4, 0.99), TAGS.classes)
    assert not d.done and d.label == "cough|speech"


def test_an_annotators_rating_noise_comes_from_their_control_errors() -> None:
    """The continuous one-coin: sigma_j from (answer - gold)^2 on controls, shrunk to one prior
    on the log scale (a 1 dB annotator is near 1 dB after 20 controls, where the inverse-gamma
    mean kept them at sqrt(70 / 22) = 1.8), one lucky control moving little."""
    prior = prior_noise(-20, 20)
    assert prior == pytest.approx(5.0)
    assert rating_noise(0.0, 0, -20, 20) == pytest.approx(prior)  # unknown: the prior
    # 20 controls 1 dB off: the posterior mean of log sigma^2 (prior worth 2, data 1 / trigamma(10))
    w = 1 / special.polygamma(1, 10.0)
    log_var = -(special.digamma(10.0) - np.log(10.0))
    expected = np.exp((1.0 * np.log(25.0) + w * log_var) / (1.0 + w) / 2)
    assert rating_noise(20.0, 20, -20, 20) == pytest.approx(expected)
    assert 1.0 < expected < 1.25
    assert rating_noise(8.0 * 8 * 20, 20, -20, 20) == pytest.approx(8, rel=0.1)  # an 8 dB one: near 8
    assert rating_noise(0.01, 1, -20, 20) > 3  # one control 0.1 dB off: still near the prior
    assert rating_noise(20 * 144.0, 20, -20, 20) > 11  # a wild rater: far above the prior
    assert rating_noise(0.0, 10**6, -20, 20) == pytest.approx(0.2, rel=1e-4)  # the floor: 0.5 % of the range


def test_a_rating_is_the_inverse_variance_mean_with_its_known_standard_error() -> None:
    mean, se, _ = rating_estimate(np.array([10.0, -10.0]), np.array([1.0, 8.0]))
    assert mean == pytest.approx((10 - 10 / 64) / (1 + 1 / 64))
    chi2 = ((10 - mean) ** 2 + (-10 - mean) ** 2 / 64) / 1
    assert se == pytest.approx(np.sqrt(1 / (1 + 1 / 64)) * np.sqrt(chi2))  # they disagree: Birge
    mean, se, sd = rating_estimate(np.array([5.0]), np.array([4.0]))
    assert (mean, se, sd) == (5.0, 4.0, 0.0)
    # answers that agree exactly keep the known-variance standard error
    assert rating_estimate(np.array([3.0, 3.0, 3.0]), np.full(3, 8.0))[1] == pytest.approx(8 / np.sqrt(3))


def test_ratings_stop_at_the_tolerance() -> None:
    FOUR = dataclasses.replace(POLICY, tolerance=4.0)  # a tenth of the range, the old default
    close = np.array([3.0, 4.0, 3.5])
    d = FOUR.decide_rating(close, np.ones(3, bool), np.full(3, 0.8), -20, 20)
    assert d.done and not d.low_agreement and float(d.label) == pytest.approx(3.5)
    d = FOUR.decide_rating(close[:1], np.ones(1, bool), np.full(1, 0.8), -20, 20)
    assert not d.done  # min 2 answers; the prior's 5 dB is over 4 dB anyway
    # Before: three noisy annotators who agree by chance closed a clip on their small spread.
    noisy = np.full(3, 8.0)
    d = FOUR.decide_rating(close, np.ones(3, bool), np.full(3, 0.8), -20, 20, noisy)
    assert not d.done  # 8 / sqrt(3) = 4.6 dB > 4 dB
    # ... and a precise annotator beside one other closes it, their answer counting most
    d = FOUR.decide_rating(np.array([3.0, 10.0]), np.ones(2, bool), np.full(2, 0.8), -20, 20, [1.0, 8.0])
    assert d.done and float(d.label) == pytest.approx((3 + 10 / 64) / (1 + 1 / 64), abs=1e-4)
    # two precise annotators far apart: not done (Birge ratio), low-agreement at the maximum
    wide = np.array([-15.0, 10.0, 18.0, -5.0, 0.0])
    d = FOUR.decide_rating(wide[:2], np.ones(2, bool), np.full(2, 0.8), -20, 20, [1.0, 1.0])
    assert not d.done
    d = FOUR.decide_rating(wide, np.ones(5, bool), np.full(5, 0.8), -20, 20)
    assert d.done and d.low_agreement
    strict = dataclasses.replace(FOUR, tolerance=0.1)
    assert not strict.decide_rating(close, np.ones(3, bool), np.full(3, 0.8), -20, 20).done
    loose = dataclasses.replace(FOUR, tolerance=15.0)
    assert loose.decide_rating(wide[:2], np.ones(2, bool), np.full(2, 0.8), -20, 20).done
    values = np.array([3.0, np.nan, np.nan, np.nan, 3.0])
    d = FOUR.decide_rating(values, np.array([True, False, False, False, True]), np.full(5, 0.8), -20, 20)
    assert d.done and d.low_agreement  # mostly can't-tell: never done by the tolerance


def test_the_default_tolerance_is_what_the_maximum_of_unknown_annotators_reach() -> None:
    """Default: the standard error of `max_answers` ratings at the prior's noise (5 / sqrt(5) on
    [-20, 20] with 5 at most): four unknown annotators who agree are not enough, five are (done,
    not low-agreement), and two known to be precise close a clip at once."""
    assert default_tolerance(-20, 20, 5) == pytest.approx(np.sqrt(5))
    assert default_tolerance(-20, 20, 7) == pytest.approx(5 / np.sqrt(7))
    same = np.full(5, 3.0)
    assert not POLICY.decide_rating(same[:4], np.ones(4, bool), np.full(4, 0.8), -20, 20).done
    d = POLICY.decide_rating(same, np.ones(5, bool), np.full(5, 0.8), -20, 20)
    assert d.done and not d.low_agreement
    assert POLICY.decide_rating(same[:2], np.ones(2, bool), np.full(2, 0.8), -20, 20, [1.5, 1.5]).done


def test_a_tag_set_is_done_on_its_joint_posterior() -> None:
    """tau is for the whole tag set: with five tags each at 0.978, the set is at 0.89, not done
    (before: every tag >= tau was enough)."""
    five = [str(i) for i in range(5)]
    votes = np.array([[1, 0, 0, 1, 0], [1, 0, 0, 1, 0]])
    q = np.full(2, 0.5)  # newcomers: 0.87 per tag; two agreeing answers give 0.978 per tag
    post = tag_posteriors(votes, np.ones(2, bool), tag_accuracy(q, 5))
    assert post.min() < 0.05 or post.max() > 0.95
    assert np.maximum(post, 1 - post).min() >= 0.95
    d = POLICY.decide_tags(votes, np.ones(2, bool), q, five)
    assert d.confidence == pytest.approx(float(np.prod(np.maximum(post, 1 - post))))
    assert d.confidence < 0.95 and not d.done
    d = POLICY.decide_tags(np.vstack([votes, votes[:1]]), np.ones(3, bool), np.full(3, q[0]), five)
    assert d.done and d.label == "0|3"


def test_multilabel_clip_asks_until_the_tags_agree() -> None:
    """Before: a multi-label clip was done at `redundancy.min` answers whatever they said."""
    split = aggregate_clip(TAGS, ["cough|speech", "cough"], [0.6, 0.6])
    assert not split.done and split.soft == {"cough": 1.0, "door": 0.0, "speech": 0.5}
    agree = aggregate_clip(TAGS, ["cough|speech", "speech|cough", "cough"], [0.6, 0.6, 0.6])
    assert not agree.done  # speech 2 against 1 at 0.6 per tag set (0.84 per tag): 0.84, short of 0.95
    agree = aggregate_clip(TAGS, ["cough|speech", "cough|speech", "cough", "cough|speech"], [0.6] * 4)
    assert agree.done and not agree.low_agreement and agree.label == "cough|speech"
    mixed = ["cough", "speech", "door", "cough|door", "speech"]
    last = aggregate_clip(TAGS, mixed, [0.6] * 5)
    assert last.done and last.low_agreement


def test_continuous_clip_asks_until_the_mean_is_precise() -> None:
    """Before: a rating was done at `redundancy.min` answers however far apart they were."""
    assert not aggregate_clip(RATING, ["2", "3", "2.5"], [0.8] * 3).done  # default: the max's precision
    four = dataclasses.replace(RATING, rating_tolerance=4.0)
    far = aggregate_clip(four, ["-15", "12"], [0.8, 0.8])
    assert not far.done and float(far.label) == pytest.approx(-1.5)
    near = aggregate_clip(four, ["2", "3", "2.5"], [0.8, 0.8, 0.8])
    assert near.done and not near.low_agreement
    at_max = aggregate_clip(RATING, ["-15", "12", "0", "18", "-19"], [0.8] * 5)
    assert at_max.done and at_max.low_agreement
    strict = dataclasses.replace(RATING, rating_tolerance=0.5)
    assert not aggregate_clip(strict, ["2", "3", "2.5"], [0.8] * 3).done
    cant = aggregate_clip(RATING, ["2", CANT_TELL, CANT_TELL], [0.8] * 3)
    assert not cant.done


def test_the_live_soft_label_is_the_one_implementation_with_fitted_skills() -> None:
    """The clip's soft label is `crowd.soft_labels` over its answers, each annotator weighted by
    their fitted skill where they have one (else their trust)."""
    classes = view("classification", classes=["a", "b", "c"])
    labels, trust, skills = ["a", "b", "b", CANT_TELL], [0.5, 0.5, 0.5, 0.5], [0.95, 0.2, None, 0.4]
    verdict = aggregate_clip(classes, labels, trust, [None] * 4, skills)
    table = pd.DataFrame({"item": "x", "worker": ["w0", "w1", "w2", "w3"], "label": labels})
    expected = soft_labels(
        table, {"w0": 0.95, "w1": 0.2, "w2": 0.5, "w3": 0.4}, sep=None, classes=["a", "b", "c"]
    )
    assert verdict.soft == pytest.approx(expected.loc["x"].to_dict(), abs=1e-6)
    assert verdict.soft["a"] == pytest.approx(0.95 / 1.65)  # can't-tell counts for no class
    tags = aggregate_clip(TAGS, ["cough|door", "door", CANT_TELL], [0.5] * 3, None, [0.9, 0.3, None])
    assert tags.soft == pytest.approx({"cough": 0.75, "door": 1.0, "speech": 0.0})


def test_soft_labels_table_leaves_cant_tell_out_and_keeps_given_classes() -> None:
    answers = pd.DataFrame(
        {
            "item": ["i", "i", "i", "j"],
            "worker": ["u", "v", "w", "u"],
            "label": ["a|b", CANT_TELL, "b", CANT_TELL],
        }
    )
    soft = soft_labels(answers, classes=["b", "a", "z"])
    assert list(soft.columns) == ["b", "a", "z"]
    assert soft.loc["i"].tolist() == [1.0, 0.5, 0.0]
    assert soft.loc["j"].isna().all()  # only can't-tell: no opinion on any class
    single = soft_labels(answers.iloc[:3].assign(label=["a", "b", "b"]), sep=None)
    assert single.loc["i"].to_dict() == pytest.approx({"a": 1 / 3, "b": 2 / 3})


def _crowd(task: str, items: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, str]]:
    """Seven answers per item from workers of mixed skill: tag sets with one tag flipped, or
    ratings with Gaussian noise."""
    tags, rows, truth = ["a", "b", "c", "d"], [], {}
    for i in range(items):
        if task == "multilabel":
            true = {t for t in tags if rng.random() < 0.4} or {tags[i % 4]}  # never empty
            truth[f"i{i}"] = "|".join(sorted(true))
        else:
            truth[f"i{i}"] = f"{rng.uniform(-20, 20):.2f}"
        for w, skill in enumerate((0.95, 0.9, 0.9, 0.85, 0.8, 0.7, 0.6)):
            if task == "multilabel":
                got = set(true) ^ ({tags[rng.integers(4)]} if rng.random() > skill else set())
                label = "|".join(sorted(got)) or CANT_TELL
            else:
                label = f"{float(truth[f'i{i}']) + rng.normal(0, 20 * (1 - skill)):.1f}"
            rows.append((f"i{i}", f"w{w}", label))
    return pd.DataFrame(rows, columns=["item", "worker", "label"]), truth


def test_replay_of_tags_and_ratings_uses_the_platform_rules() -> None:
    """`simulate-crowd --task multilabel|continuous`: the tag and rating rules on real answer
    orders; dynamic asks fewer answers than fixed:7."""
    from listenloop.crowd.redundancy import FixedPolicy, replay_items

    rng = np.random.default_rng(0)
    answers, truth = _crowd("multilabel", 150, rng)
    fixed = replay_items(answers, truth, FixedPolicy(7), np.random.default_rng(1), "multilabel")
    dynamic = replay_items(answers, truth, POLICY, np.random.default_rng(1), "multilabel")
    assert fixed.answers_per_item == 7 and dynamic.answers_per_item < 5
    assert dynamic.accuracy >= 0.9 and fixed.accuracy >= 0.9
    assert fixed.low_agreement.sum() == 0  # fixed: low-agreement only without a tag answer
    answers, truth = _crowd("continuous", 150, rng)
    fixed = replay_items(answers, truth, FixedPolicy(7), np.random.default_rng(1), "continuous", (-20, 20))
    four = dataclasses.replace(POLICY, tolerance=4.0)  # every annotator unknown: the default asks the max
    dynamic = replay_items(answers, truth, four, np.random.default_rng(1), "continuous", (-20, 20))
    assert fixed.answers_per_item == 7 and dynamic.answers_per_item < 5  # POLICY's max is 5
    assert 0 < fixed.mae < dynamic.mae < 3 and np.isnan(dynamic.accuracy)


def test_simulate_crowd_command_takes_a_task(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from listenloop.cli.app import app

    answers, truth = _crowd("continuous", 40, np.random.default_rng(2))
    answers.to_csv(tmp_path / "answers.csv", index=False)
    pd.DataFrame({"item": list(truth), "truth": list(truth.values())}).to_csv(
        tmp_path / "truth.csv", index=False
    )
    args = [
        "simulate-crowd",
        "--answers",
        str(tmp_path / "answers.csv"),
        "--truth",
        str(tmp_path / "truth.csv"),
    ]
    args += ["--policy", "fixed:7", "--policy", "dynamic:min=2,max=7,tau=0.95", "--runs", "2", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--task", "continuous"])
    assert result.exit_code == 0, result.output
    assert "MAE" in result.output and "mean absolute error" in (tmp_path / "o" / "report.md").read_text()
    refused = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "p"), "--task", "continuous", "--trust", "ds"]
    )
    assert refused.exit_code != 0 and "--trust none" in str(refused.exception)


def test_a_dynamic_policy_text_takes_a_rating_tolerance() -> None:
    from listenloop.crowd.redundancy import parse_policy

    assert parse_policy("dynamic:min=2,max=7,tau=0.95,tol=2.5").tolerance == 2.5
    assert parse_policy("dynamic:min=2,max=7,tau=0.95").tolerance is None
    with pytest.raises(ListenloopError, match="tolerance > 0"):
        parse_policy("dynamic:min=2,max=7,tau=0.95,tol=0")


def test_rating_noise_of_control_answers_weights_the_live_mean() -> None:
    from listenloop.engine.live.aggregate import rating_noise_of

    controls = [(1, "5.5", "5"), (1, "4.5", "5"), (2, "15", "5"), (2, "-3", "5"), (3, "2", None)]
    sd = rating_noise_of(RATING, controls)
    assert sd[1] == pytest.approx(rating_noise(0.5, 2, -20, 20))
    assert sd[2] == pytest.approx(rating_noise(164.0, 2, -20, 20))
    assert 3 not in sd and sd[None] == pytest.approx(prior_noise(-20, 20))  # no number: no check
    verdict = aggregate_clip(RATING, ["2", "12"], [0.8, 0.8], noise=[sd[1], sd[2]])
    w1, w2 = sd[1] ** -2, sd[2] ** -2  # the precise annotator counts most
    assert float(verdict.label) == pytest.approx((2 * w1 + 12 * w2) / (w1 + w2), abs=1e-4)
    spam = aggregate_clip(RATING, ["2", "12"], [0.8, 0.8], chance=[False, True], noise=[sd[1], sd[2]])
    assert float(spam.label) == pytest.approx(2.0, abs=1e-3)  # a flagged spammer has no weight


def test_the_live_loop_weights_ratings_by_control_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through `submit_answer`: the annotator whose controls were close outweighs the one whose
    controls were far off, on the clip they both rate (before: both at the same trust, the mean)."""
    import random

    from listenloop.engine.accounts import Principal, create_user
    from listenloop.engine.config import ProjectConfig
    from listenloop.engine.live.tasks import next_task, submit_answer
    from listenloop.engine.projects import create_project
    from listenloop.store.database import Database
    from listenloop.store.models import Clip, Project, Task

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.upgrade()
    try:
        with db.write() as s:
            owner = create_user(s, "owner", "x", "owner")
            people = [
                Principal(u.id, u.username, "annotator") for u in (create_user(s, n, "x") for n in "ab")
            ]
            config = ProjectConfig(
                name="r", task_type="continuous", range=[-20, 20], control_rate=0.5, consistency_rate=0.0,
                redundancy={"min": 2, "max": 2, "tau": 0.95},
            )  # fmt: skip
            pid = create_project(s, Principal(owner.id, "owner", "owner"), config).id
            for i in range(3):  # clip 0 to rate; 1 and 2 gold at 5
                s.add(
                    Clip(project_id=pid, file_name=f"c{i}.wav", sha256=f"{i:064d}", path=f"a/{i}.wav",
                         duration=1.0, sample_rate=8000, status="queued", rank=float(i), is_gold=i > 0,
                         gold_label="5" if i > 0 else None)
                )  # fmt: skip
        control = next(k for k in range(100) if random.Random(k).random() < 0.5)
        for who, answers in zip(people, (["5.5", "4.5"], ["20", "-15"]), strict=True):
            for answer in answers:
                with db.write() as s:
                    task = next_task(s, pid, who, rng=random.Random(control))
                    assert s.get(Task, task.task_id).kind == "control"
                    submit_answer(s, task.task_id, who, answer)
        with db.write() as s:
            s.get(Project, pid).control_rate = 0.0
        for who, answer in zip(people, ["2", "12"], strict=True):
            with db.write() as s:
                task = next_task(s, pid, who)
                assert s.get(Task, task.task_id).kind == "regular"
                submit_answer(s, task.task_id, who, answer)
        with db.read() as s:
            clip = s.get(Clip, task.clip_id)
            assert clip.status in ("done", "low_agreement") and float(clip.label) < 3
    finally:
        db.dispose()
