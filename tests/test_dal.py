"""MC dropout active learning (003_): the MC-dropout learner, DAL's stages, its loop and live rounds."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from listenloop.errors import ListenloopError  # noqa: E402
from listenloop.learners.mc_dropout import MCDropoutClassifier  # noqa: E402
from listenloop.strategies.base import QueryContext  # noqa: E402
from listenloop.strategies.dal import DAL, pseudo_label_shares  # noqa: E402

FAST = {"initial_steps": 150, "per_class_batch": 32, "steps": 10, "masks": 32}


def blobs(n_per: int = 60, classes: int = 3, dims: int = 8, seed: int = 0, scale: float = 4.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=scale, size=(classes, dims))
    y = np.repeat(np.arange(classes), n_per)
    return (centres[y] + rng.normal(size=(len(y), dims))).astype(np.float32), y.astype(str)


def test_mc_dropout_learns_and_is_reproducible() -> None:
    X, y = blobs()
    a = MCDropoutClassifier(steps=200, per_class_batch=32, random_state=3).fit(X, y)
    b = MCDropoutClassifier(steps=200, per_class_batch=32, random_state=3).fit(X, y)
    p = a.predict_proba(X)
    assert p.shape == (len(X), 3) and np.allclose(p.sum(1), 1.0)
    assert (a.predict(X) == y).mean() > 0.85
    assert np.array_equal(p, b.predict_proba(X))
    c = pickle.loads(pickle.dumps(a))
    assert np.array_equal(c.predict_proba(X), p)


def test_mc_scores_equal_one_forward_pass_per_mask() -> None:
    """The one-matrix-product form gives each mask's softmax (eq. 2) and the vote entropy (eq. 5-7)."""
    X, y = blobs(n_per=20, scale=1.0)
    m = MCDropoutClassifier(steps=50, per_class_batch=16, masks=16).fit(X, y)
    proba, ent = m.mc_scores(X, seed=5)
    keep = torch.from_numpy(
        (np.random.default_rng(5).random((16, X.shape[1]), dtype=np.float32) >= 0.5).astype(np.float32) * 2
    )
    with torch.no_grad():
        per = torch.stack([torch.softmax(m.layer_(torch.from_numpy(X) * k), 1) for k in keep]).numpy()
    assert np.allclose(proba, per.mean(0), atol=1e-5)
    votes = per.argmax(2).T  # rows x masks
    share = np.stack([(votes == c).mean(1) for c in range(3)], 1)
    ref = -np.sum(np.where(share > 0, share * np.log(np.where(share > 0, share, 1)), 0), 1)
    assert np.allclose(ent, ref, atol=1e-5) and ent.max() > 0  # the masks disagree on some clips


def test_new_classes_grow_the_output_layer() -> None:
    X, y = blobs()
    m = MCDropoutClassifier(steps=100, per_class_batch=16).fit(X[y != "2"], y[y != "2"])
    before = m.layer_.weight.detach().clone()
    m.add_classes(np.array(["2", "0"]))
    assert m.classes_.tolist() == ["0", "1", "2"]
    assert torch.equal(m.layer_.weight[:2], before) and float(m.layer_.weight.detach()[2].abs().sum()) == 0.0


def test_minibatch_shares_follow_eq_8_and_9() -> None:
    shares = pseudo_label_shares(np.array([3, 3, 3, 0]), np.array([100, 0, 100, 5]), 256, 0.01)
    assert shares.tolist() == [[192, 64], [256, 0], [192, 64], [0, 256]]  # 0.01·256·100/(3+1) = 64
    assert pseudo_label_shares([3], [100], 256, 0.0).tolist() == [[256, 0]]  # α = 0: labels only
    assert pseudo_label_shares([3], [100], 256, 1.0).tolist() == [[7, 249]]  # α = 1: equal weight


def _ctx(X, y, labelled, candidates, it, model=None):
    return QueryContext(
        model=model,
        X=X,
        candidates=candidates,
        labelled=labelled,
        y_labelled=y[labelled],
        iteration=it,
        rng=np.random.default_rng(0),
    )


def test_dal_stages_pseudo_labels_and_queries() -> None:
    X, y = blobs(scale=1.5)
    labelled = np.array([0, 1, 60, 61, 120, 121])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    rng = np.random.default_rng(0)
    dal = DAL(t0=2, **FAST)
    first = dal.fit_round(None, X, labelled, y[labelled], pool, iteration=0, rng=rng)
    assert len(first.pseudo_rows) == 0  # initialisation only
    assert len(dal.select(_ctx(X, y, labelled, pool, 1, first.model), 5)) == 0  # within T0
    picked = dal.select(_ctx(X, y, labelled, pool, 2, first.model), 5)
    _, ent = first.model.mc_scores(X[pool], seed=1)
    assert len(picked) == 5 and set(picked) <= set(pool.tolist())
    # the picks are among the most disputed clips of the pool
    assert np.median(ent[np.isin(pool, picked)]) >= np.quantile(ent, 0.8)
    rest = np.setdiff1d(pool, picked)
    lab2 = np.concatenate([labelled, picked])
    w = first.model.layer_.weight.detach().clone()
    second = dal.fit_round(None, X, lab2, y[lab2], rest, iteration=3, rng=rng)
    assert second.model is first.model and not torch.equal(w, second.model.layer_.weight)  # stage II
    assert len(second.pseudo_rows) > 0 and set(second.pseudo_rows.tolist()) <= set(rest.tolist())
    assert (second.pseudo_labels == y[second.pseudo_rows]).mean() > 0.8
    strict = DAL(theta=1.0, **FAST)
    strict.fit_round(None, X, labelled, y[labelled], pool, iteration=0, rng=np.random.default_rng(0))
    assert len(strict.fit_round(None, X, labelled, y[labelled], pool, iteration=1, rng=rng).pseudo_rows) == 0


def test_dal_in_the_simulation_loop_asks_nothing_in_its_first_t0_iterations() -> None:
    from listenloop.sim.loop import LoopConfig, run_loop

    X, y = blobs(scale=1.5)
    rng = np.random.default_rng(0)
    pool = np.arange(0, 180, 1)[np.arange(180) % 5 != 0]
    test = np.arange(0, 180, 5)
    init = np.array([1, 2, 61, 62, 121, 122])
    cfg = LoopConfig(initial=6, batch=3, iterations=4, warmup=1)
    curve = run_loop(X, y, pool, test, init, DAL(t0=2, **FAST), lambda: None, cfg, rng)
    assert curve.labels == [6, 6, 6, 9, 12]  # no shared random warm-up, no queries while it < T0
    assert curve.scores[-1]["uar"] > 0.6  # chance: 0.33


def test_dal_bad_parameters_and_regression_are_refused() -> None:
    with pytest.raises(ListenloopError, match="theta"):
        DAL(theta=1.5)
    with pytest.raises(ListenloopError, match="alpha"):
        DAL(alpha=-1)
    X, y = blobs()
    with pytest.raises(ListenloopError, match="classification"):
        DAL(**FAST).fit_round(
            None,
            X,
            np.arange(3),
            y[:3],
            np.arange(3, 10),
            iteration=0,
            rng=np.random.default_rng(0),
            task="regression",
        )


def test_a_live_round_with_strategy_dal_uses_the_dal_model() -> None:
    """The platform's round: DAL's network is the project's model, its entropy order heads the queue."""
    from listenloop.engine.config import strategy_problems
    from listenloop.engine.learning.retrain import retrain_and_rank

    X, y = blobs(scale=1.5)
    labelled = np.concatenate([np.arange(0, 180, 60) + i for i in range(4)])
    pool = np.setdiff1d(np.arange(len(X)), labelled)
    res = retrain_and_rank(
        X, labelled, y[labelled], pool, classes=["0", "1", "2"], strategy="dal", queue_size=10, iteration=1
    )
    assert isinstance(res.model, MCDropoutClassifier) and not res.cold_start
    assert sorted(res.order.tolist()) == pool.tolist()
    assert len(res.pseudo_rows) > 0  # the round ran stage I and II after initialising
    assert strategy_problems("classification", "dal", ["0", "1", "2"]) == []
    assert "mal_pann" in strategy_problems("classification", "mal", ["0", "1", "2"])[0][1]


def test_a_platform_project_with_strategy_dal_runs_its_live_round(tmp_path) -> None:
    """The learning service runs a DAL project's round: the DAL network is the round's model, its
    pseudo-labels are counted (never stored as labels) and the queue follows its vote entropy."""
    import random

    from sqlalchemy import select

    from api_support import tone_wav, zip_of
    from listenloop.engine.accounts import Principal, create_user
    from listenloop.engine.config import ProjectConfig
    from listenloop.engine.learning.service import LearningService
    from listenloop.engine.projects import create_project
    from listenloop.engine.uploads import store_clips, unpack_archive
    from listenloop.store.database import Database
    from listenloop.store.models import Clip, ModelRun, Project

    db = Database(f"sqlite:///{tmp_path / 'dal.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    names = {f"{k}-{i:02d}.wav": (k, f) for k, f in (("low", 300), ("high", 2500)) for i in range(20)}
    zpath = tmp_path / "tones.zip"
    zpath.write_bytes(zip_of({n: tone_wav(f, i) for i, (n, (_, f)) in enumerate(names.items())}))
    seeds = {n: k for n, (k, _) in names.items() if int(n[-6:-4]) < 5}
    unpacked = unpack_archive(zpath, tmp_path)
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner").id
        body = {"name": "tones", "task_type": "binary", "classes": ["low", "high"], "feature_set": "logmel"}
        body |= {"strategy": "dal", "passive_share": 0.0}
        project = create_project(s, Principal(owner, "owner", "owner"), ProjectConfig(**body))
        store_clips(s, project, unpacked, data, labels=seeds, rng=random.Random(0))
        pid = project.id
    unpacked.cleanup()
    service = LearningService(db, data, inline=True)
    try:
        assert [o.state for o in service.run_once()] == ["ran"]
        with db.read() as s:
            (run,) = s.scalars(select(ModelRun).where(ModelRun.project_id == pid)).all()
            project = s.get(Project, pid)
            clips = s.scalars(select(Clip).where(Clip.project_id == pid)).all()
        assert run.strategy == "dal" and project.labels_count == 10
        assert {c.label for c in clips if c.seed_label is None} == {None}  # pseudo-labels stay out
        assert {c.status for c in clips if c.seed_label is None} == {"queued"}
    finally:
        service.stop()
        db.dispose()


def test_the_iteration_timer_runs_both_stages() -> None:
    from listenloop.bench.dal_iteration import time_iterations

    r = time_iterations(dims=16, classes=3, pool=500, iterations=1)
    assert r["init_s"] > 0 and r["iteration_s"] >= r["stage1_s"] > 0 and r["stage2_s"] > 0
