"""A project config's 422 lists every problem at once, each at its field with a plain sentence
(it came as raw pydantic text, one problem at a time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api_support import login
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.config import ProjectConfig, config_problems
from listenloop.server import create_app

RAW = ("Input should", "Value error", "pydantic", "validation error")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API on SQLite with an owner (validation needs no second database)."""
    tmp = tmp_path_factory.mktemp("config")
    app = create_app(f"sqlite:///{tmp / 'listenloop.db'}", tmp / "data", learning=False)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with TestClient(app) as c:
        yield c


def _problems(c: TestClient, body: object) -> dict[str, str]:
    r = c.post("/api/v1/projects", headers=login(c, "owner", "owner-pass-1"), json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    for p in detail:
        assert p["loc"][0] == "body" and isinstance(p["field"], str) and isinstance(p["type"], str), p
        assert p["msg"].endswith(".") and len(p["msg"].split()) >= 3, p  # a sentence
        assert not any(w in p["msg"] for w in RAW), p
    said = [(p["field"], p["msg"]) for p in detail]
    assert len(said) == len(set(said)), detail  # each sentence once (not once per list item)
    return {field: " ".join(m for f, m in said if f == field) for field, _ in said}


def test_every_problem_at_once_with_its_field(client: TestClient) -> None:
    body = {
        "name": "",
        "task_type": "binary",
        "classes": ["yes", "yes"],
        "retrain_every": 0,
        "passive_share": 0.9,
        "redundancy": {"min": 5, "max": 3, "tau": 2},
        "control_rate": 0.4,
        "consistency_rate": 0.3,
        "budget": 0,
        "colour": "red",
        "learner": "xgboost",
        "feature_set": "wav2vec",
        "strategy": "nope",
    }
    got = _problems(client, body)
    assert got == {
        "name": "Give the project a name of 1 to 200 characters.",
        "classes": "A class is named twice.",
        "retrain_every": "A whole number, at least 1 (at most 2,147,483,647).",
        "passive_share": "A share from 0 to 0.5.",
        "redundancy.tau": "A number above 0 and at most 1.",
        "redundancy.max": "The maximum must be at least the minimum (5).",
        "consistency_rate": "Control and consistency rates together must not exceed 0.5.",
        "budget": "A whole number of answers, at least 1 (at most 2,147,483,647), or null: no limit.",
        "colour": "Not a project setting: remove it (or check its spelling).",
        "learner": "'xgboost' is not a learner for classes: use one of logreg, rf, svm.",
        "feature_set": "'wav2vec' is not a feature set: use one of compare, egemaps, logmel, mfcc.",
        "strategy": got["strategy"],
    }
    assert (
        got["strategy"].startswith("'nope' is not a query strategy: use one of ")
        and "margin" in got["strategy"]
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"task_type": "classification", "classes": ["a", "b"]}, {"name": "Required."}),
        ({"name": "x", "task_type": "sorting"}, {"task_type": "One of"}),
        ({"name": "x", "task_type": "classification"}, {"classes": "A classification task needs classes."}),
        ({"name": "x", "task_type": "binary", "classes": ["a", "b", "c"]}, {"classes": "exactly two"}),
        (
            {"name": "x", "task_type": "continuous", "range": [3, 1], "classes": ["a"]},
            {"range": "Low must be below high, not [3, 1].", "classes": "a range, not classes"},
        ),
        ({"name": "x", "task_type": "continuous"}, {"range": "needs a range"}),
        (
            {"name": "x", "task_type": "multilabel", "classes": ["a|b"], "range": [0, 1]},
            {"classes": "'|'", "range": "is for continuous tasks"},
        ),
        ({"name": "x", "task_type": "binary", "classes": ["a", "can't tell"]}, {"classes": "always offered"}),
        ({"name": "x", "task_type": "binary", "classes": "a,b"}, {"classes": "A list of class names."}),
        (
            {"name": "x", "task_type": "binary", "classes": ["a", "b"],
             "strategy": "regression_binary_confidence"},
            {"strategy": "is for ratings"},
        ),
        (
            {"name": "x", "task_type": "continuous", "range": [0, 1], "learner": "svm"},
            {"learner": "'svm' is not a learner for ratings: use one of rf, ridge, svr."},
        ),
        ([1, 2], {"": "JSON object"}),
    ],
)  # fmt: skip
def test_each_rule_says_what_is_wrong(client: TestClient, body: object, expected: dict[str, str]) -> None:
    got = _problems(client, body)
    assert set(got) == set(expected), got
    for field, part in expected.items():
        assert part in got[field], (field, got[field])


def test_not_json_and_odd_values_get_sentences_never_a_500(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    r = client.post("/api/v1/projects", headers={**oh, "Content-Type": "application/json"}, content=b"{nope")
    assert r.status_code == 422 and r.json()["detail"][0]["msg"].startswith("The body is not valid JSON")
    for body in (
        {"name": 5, "task_type": None, "classes": [None, {}], "range": ["a"], "redundancy": "x"},
        {
            "name": "x",
            "task_type": "classification",
            "classes": ["a", "b"],
            "redundancy": {"min": "a", "x": 1},
        },
        {"name": "x", "task_type": "continuous", "range": [0, 1, 2], "learner": 3, "strategy": []},
        {},
    ):
        assert _problems(client, body), body


def test_the_model_itself_reports_every_problem_and_tidies_a_valid_config() -> None:
    with pytest.raises(ValidationError) as caught:
        ProjectConfig.model_validate({"name": "", "task_type": "binary", "classes": ["a"], "control_rate": 2})
    assert {tuple(e["loc"]) for e in caught.value.errors()} == {("name",), ("classes",), ("control_rate",)}
    config = ProjectConfig(name="x", task_type="classification", classes=[" a", "b "])
    assert config.classes == ["a", "b"]
    assert (
        ProjectConfig(name="x", task_type="continuous", range=(0, 1)).strategy
        == "regression_binary_confidence"
    )
    assert config_problems({"name": "x", "task_type": "binary", "classes": ["a", "b"]}) == []


def test_a_settings_change_gets_the_same_sentences(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "patched", "task_type": "binary", "classes": ["yes", "no"]}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"retrain_every": 0, "trust_threshold": 2})
    assert r.status_code == 422
    got = {p["field"]: p["msg"] for p in r.json()["detail"]}
    assert got == {
        "retrain_every": "A whole number, at least 1 (at most 2,147,483,647).",
        "trust_threshold": "A number from 0 to 1.",
    }
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"colour": "red", "redundancy": {"mn": 1}})
    assert r.status_code == 422
    got = {p["field"]: p["msg"] for p in r.json()["detail"]}
    assert set(got) == {"colour", "redundancy.mn"} and got["colour"].startswith("Not a project setting")
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"learner": "xgboost", "strategy": "nope"})
    assert r.status_code == 422 and {p["field"] for p in r.json()["detail"]} == {"learner", "strategy"}


def test_strategies_the_live_loop_cannot_run_are_refused_per_task_type(client: TestClient) -> None:
    """least_confidence_tuned needs a yes/no model: a multi-class project failed every round with it.
    The 422 names the strategy, the task type and what is allowed, at creation and on PATCH (also
    when the classes change under it); binary and multi-label (tag by tag) projects may use it."""
    oh = login(client, "owner", "owner-pass-1")
    three = {"name": "x", "task_type": "classification", "classes": ["a", "b", "c"]}
    got = _problems(client, {**three, "strategy": "least_confidence_tuned", "retrain_every": 0})
    assert set(got) == {"strategy", "retrain_every"}  # beside the other problems
    msg = got["strategy"]
    assert msg.startswith("'least_confidence_tuned' cannot run on a classification project with 3 classes")
    assert "Use one of random, least_confidence, margin" in msg and "self_training" in msg
    assert "least_confidence_tuned," not in msg.split("Use one of")[1]
    ratings = {"name": "x", "task_type": "continuous", "range": [0, 1], "strategy": "self_training"}
    got = _problems(client, ratings)["strategy"]
    assert "continuous project" in got and "random, regression_binary_confidence" in got
    for body in (
        {"name": "b", "task_type": "binary", "classes": ["yes", "no"]},
        {"name": "m", "task_type": "multilabel", "classes": ["a", "b", "c"]},
        {"name": "two", "task_type": "classification", "classes": ["a", "b"]},
    ):
        r = client.post("/api/v1/projects", headers=oh, json={**body, "strategy": "least_confidence_tuned"})
        assert r.status_code == 201, r.text
    two = r.json()["id"]
    r = client.patch(f"/api/v1/projects/{two}", headers=oh, json={"classes": ["a", "b", "c"]})
    assert r.status_code == 422 and "with 3 classes" in r.json()["detail"][0]["msg"]
    r = client.post("/api/v1/projects", headers=oh, json={**three, "strategy": "self_training"})
    pid = r.json()["id"]
    r = client.patch(f"/api/v1/projects/{pid}", headers=oh, json={"strategy": "least_confidence_tuned"})
    assert r.status_code == 422
    (problem,) = r.json()["detail"]
    assert problem["field"] == "strategy" and "classification project with 3 classes" in problem["msg"]
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["strategy"] == "self_training"
    opts = client.get("/api/v1/project-options", headers=oh).json()["strategies"]
    assert "least_confidence_tuned" in opts["binary"]
    assert "least_confidence_tuned" not in opts["classification"]
    assert opts["continuous"] == opts["regression"] == ["random", "regression_binary_confidence"]


def test_projects_refuse_what_needs_a_file_or_the_simulation() -> None:
    """pann needs the user's CNN14 checkpoint and mal the simulation's MFCC Gaussians: a project can
    use neither (mal_pann and dal it can)."""
    from listenloop.engine.config import learning_problems, strategy_problems

    (problem,) = learning_problems("classification", "pann", None, None)
    assert problem["field"] == "feature_set" and "pann" not in problem["msg"].split("use one of")[1]
    assert "mal_pann" in strategy_problems("classification", "mal", ["a", "b"])[0][1]
    assert strategy_problems("classification", "mal_pann", ["a", "b"]) == []
