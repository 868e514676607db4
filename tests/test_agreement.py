"""Agreement statistics: Krippendorff's alpha and Fleiss' kappa on a hand-computed example, the
answers → table conversion against an independent computation, and the project's agreement
through the API, the dashboard (background refresh) and the JSONL export."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from fastapi.testclient import TestClient
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from api_support import annotator, login, wavs, zip_of
from listenloop.crowd.agreement import agreement, kappa_raters
from listenloop.engine import agreement as project_stats
from listenloop.store.models import utcnow

# Three items, three answers each: a a a | a b b | b b b.
# Fleiss: P_i = 1, 1/3, 1 -> mean 7/9; p_a = 4/9, p_b = 5/9 -> P_e = 41/81;
#   kappa = (7/9 - 41/81) / (1 - 41/81) = 22/40 = 0.55.
# Krippendorff (nominal): coincidences o_aa = 3, o_ab = o_ba = 1, o_bb = 4 (n = 9, n_a = 4, n_b = 5);
#   D_o = 2/9, D_e = 2 * 4 * 5 / (9 * 8) = 5/9 -> alpha = 1 - 2/5 = 0.6.
ITEMS = [1, 1, 1, 2, 2, 2, 3, 3, 3]
LABELS = ["a", "a", "a", "a", "b", "b", "b", "b", "b"]


def test_hand_computed_example() -> None:
    out = agreement(ITEMS, LABELS, ["a", "b", "c"])
    assert out["alpha"] == pytest.approx(0.6)
    assert out["kappa"] == pytest.approx(0.55)
    assert (out["items"], out["answers"], out["kappa_raters"], out["kappa_items"]) == (3, 9, 3, 3)
    a, b, c = out["classes"]
    # with two classes in play, "a against the rest" is the whole table again
    assert (a["label"], a["answers"]) == ("a", 4) and a["alpha"] == pytest.approx(0.6)
    assert a["kappa"] == pytest.approx(0.55) and b["kappa"] == pytest.approx(0.55)
    assert (c["answers"], c["alpha"], c["kappa"]) == (0, None, None)  # nobody said c: undefined


def test_unequal_answers_can_tell_and_single_answers() -> None:
    # a fourth item with two answers (a b): alpha reads it, kappa reads the first 3 of items with 3;
    # by hand: o_aa = 3, o_ab = o_ba = 2, o_bb = 4 (n = 11): D_o = 4/11, D_e = 2*5*6/(11*10) = 6/11,
    # alpha = 1 - 4/6 = 1/3. A can't-tell answer and an item with one answer change nothing.
    items = [*ITEMS, 4, 4, 4, 5]
    labels = [*LABELS, "a", "can't tell", "b", "a"]
    out = agreement(items, labels, ["a", "b"])
    assert out["alpha"] == pytest.approx(1 / 3)
    assert out["kappa"] == pytest.approx(0.55)
    assert (out["items"], out["answers"], out["kappa_raters"], out["kappa_items"]) == (4, 11, 3, 3)
    assert kappa_raters([2, 2, 2, 2, 3, 3]) == 2  # 12 answers kept against 6
    assert kappa_raters([2, 3, 3, 3]) == 3  # 9 against 8
    assert kappa_raters([1, 1]) == 0


def test_kappa_reads_the_first_answers_of_each_item() -> None:
    # item 1's first two answers agree, its third does not: k = 2 keeps (a, a); item 2: (b, a)
    out = agreement([1, 1, 1, 2, 2, 3, 3], ["a", "a", "b", "b", "a", "b", "b"], ["a", "b"])
    assert out["kappa_raters"] == 2 and out["kappa_items"] == 3
    expected = fleiss_kappa(np.array([[2, 0], [1, 1], [0, 2]]))
    assert out["kappa"] == pytest.approx(expected)


def test_multilabel_per_tag() -> None:
    items = [1, 1, 2, 2, 3, 3]
    labels = ["x|y", "x", "y", "y", "x|y", "x|y"]
    out = agreement(items, labels, ["x", "y"], multilabel=True)
    x, y = out["classes"]
    # tag x present: item 1 (1, 1), item 2 (0, 0), item 3 (1, 1): perfect agreement
    assert x["alpha"] == pytest.approx(1.0) and x["answers"] == 4
    # tag y: item 1 (1, 0), items 2 and 3 (1, 1): all of it from one disagreement
    counts = np.array([[1, 1], [2, 0], [2, 0]])
    assert y["alpha"] == pytest.approx(
        krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    )
    sets = np.array([[1, 1, 0], [0, 0, 2], [0, 2, 0]])  # values x, x|y, y
    assert out["alpha"] == pytest.approx(
        krippendorff.alpha(value_counts=sets, level_of_measurement="nominal")
    )


def test_table_matches_an_independent_computation() -> None:
    # a random crowd: alpha from a raters x items matrix (the library's other input), kappa from
    # statsmodels' own aggregate_raters on an items x raters matrix
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    truth = rng.integers(0, 3, size=60)
    items, workers, labels = [], [], []
    for i, t in enumerate(truth):
        for w in rng.choice(8, size=3, replace=False):
            items.append(i)
            workers.append(int(w))
            labels.append(classes[t] if rng.random() < 0.7 else classes[rng.integers(0, 3)])
    out = agreement(items, labels, classes)
    matrix = np.full((8, 60), np.nan)
    for i, w, label in zip(items, workers, labels, strict=True):
        matrix[w, i] = classes.index(label)
    assert out["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    )
    per_item = np.array([[classes.index(labels[3 * i + j]) for j in range(3)] for i in range(60)])
    assert out["kappa"] == pytest.approx(fleiss_kappa(aggregate_raters(per_item)[0]))


def _project(c: TestClient, oh: dict[str, str], body: dict) -> int:
    r = c.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(2)))})
    assert r.status_code == 201, r.text
    return pid


def test_project_agreement_api_dashboard_and_export(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "agree", "task_type": "classification", "classes": ["0", "1", "2"], "control_rate": 0.0,
        "consistency_rate": 0.0, "redundancy": {"min": 3, "max": 3, "tau": 0.99},
    }  # fmt: skip
    pid = _project(client, oh, body)
    people = [annotator(client, f"agr{k}") for k in range(3)]
    answers = {}  # task id -> answer; each of the three answers both clips
    for k, h in enumerate(people):
        for _ in range(2):
            task = client.get(f"/api/v1/projects/{pid}/next", headers=h).json()
            value = "0" if k < 2 else "1"
            r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=h, json={"answer": value})
            assert r.status_code == 201, r.text
            answers[task["task_id"]] = value
    r = client.get(f"/api/v1/projects/{pid}/agreement", headers=oh)
    assert r.status_code == 200, r.text
    got = r.json()
    # both clips: 0 0 1 -> o_00 = 2, o_01 = o_10 = 2 (n = 6, n_0 = 4, n_1 = 2):
    # D_o = 4/6, D_e = 2*4*2/(6*5) = 16/30 -> alpha = 1 - (4/6)/(16/30) = -0.25
    assert got["alpha"] == pytest.approx(-0.25)
    assert (got["items"], got["answers"], got["kappa_raters"], got["kappa_items"]) == (2, 6, 3, 2)
    assert [c["label"] for c in got["classes"]] == ["0", "1", "2"] and got["answers_used"] == 6

    # the dashboard shows what the background refresh stored, never computing it per poll
    dash = client.get(f"/api/v1/projects/{pid}/dashboard", headers=oh).json()
    assert dash["agreement"] is None
    db = client.app.state.db
    assert project_stats.refresh(db) == [pid]
    assert project_stats.refresh(db) == []  # nothing new: not due
    dash = client.get(f"/api/v1/projects/{pid}/dashboard", headers=oh).json()
    assert dash["agreement"]["alpha"] == pytest.approx(-0.25)
    assert project_stats.refresh(db, utcnow() + project_stats.REFRESH_AFTER) == []  # still no new answer

    lines = client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=oh).text.splitlines()
    last = json.loads(lines[-1])
    assert last["record"] == "agreement" and last["alpha"] == pytest.approx(-0.25)

    ann = people[0]
    assert client.get(f"/api/v1/projects/{pid}/agreement", headers=ann).status_code == 403
    assert client.get("/api/v1/projects/999/agreement", headers=oh).status_code == 404
    rating = {"name": "r", "task_type": "continuous", "range": [0, 10]}
    rid = client.post("/api/v1/projects", headers=oh, json=rating).json()["id"]
    r = client.get(f"/api/v1/projects/{rid}/agreement", headers=oh)
    assert r.status_code == 422 and "continuous" in r.text


def test_refresh_rule() -> None:
    now = utcnow()
    assert not project_stats.is_due(1, None, now)
    assert project_stats.is_due(2, None, now)
    assert not project_stats.is_due(15, (10, now), now)  # 5 new: fewer than 10
    assert project_stats.is_due(20, (10, now), now)
    assert not project_stats.is_due(1050, (1000, now), now)  # 50 new: under 10 % of 1000
    assert project_stats.is_due(1001, (1000, now - project_stats.REFRESH_AFTER), now)


def test_bench_agrees_with_the_independent_computation(tmp_path) -> None:
    from listenloop.bench.agreement import compare

    rng = np.random.default_rng(1)
    rows = ["item,worker,label"]
    for i in range(40):
        for w in rng.choice(6, size=int(rng.integers(2, 5)), replace=False):
            rows.append(f"i{i},w{w},{rng.choice(['x', 'y', 'z'], p=[0.6, 0.3, 0.1])}")
    (tmp_path / "answers.csv").write_text("\n".join(rows) + "\n")
    stats = [r for r in compare(tmp_path / "answers.csv") if "statistic" in r]
    assert len(stats) == 8 and all(r["difference"] < 1e-9 for r in stats), stats
