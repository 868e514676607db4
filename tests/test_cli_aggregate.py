"""`listenloop aggregate`: outputs and every malformed input as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


ANSWERS = "item,worker,label\n1,a,0\n1,b,0\n1,c,1\n2,a,1\n2,b,1\n2,c,1\n3,a,0\n3,b,1\n3,c,0\n"


@pytest.mark.parametrize("method", ["mv", "trust", "ds", "mace", "glad"])
def test_categorical_methods_write_labels_and_workers(tmp_path: Path, method: str) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli(
        "aggregate", "a.csv", "--method", method, "--out", "o.csv", "--workers-out", "w.csv", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_csv(tmp_path / "o.csv", dtype={"item": str, "label": str})
    assert list(labels.columns[:3]) == ["item", "label", "confidence"]
    assert {"p_0", "p_1"} <= set(labels.columns)
    assert labels["item"].tolist() == ["1", "2", "3"]  # ids round-trip as strings
    assert labels.set_index("item")["label"]["2"] == "1"
    workers = pd.read_csv(tmp_path / "w.csv", dtype={"worker": str})
    assert list(workers.columns) == ["worker", "skill", "answers"] and workers["answers"].tolist() == [
        3,
        3,
        3,
    ]


def test_continuous_methods(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("item,worker,label\nx,a,1\nx,b,3\nx,c,8\ny,a,2\n")
    for method, expected in (("mean", 4.0), ("median", 3.0)):
        proc = run_cli("aggregate", "r.csv", "--method", method, "--out", f"{method}.csv", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        table = pd.read_csv(tmp_path / f"{method}.csv", dtype={"item": str})
        assert list(table.columns) == ["item", "value"]
        assert table.set_index("item")["value"]["x"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("content", "args"),
    [
        ("item,worker,label\n", ["--method", "mv"]),  # no answers
        ("item,worker\n1,a\n", ["--method", "mv"]),  # no label column
        ("item,worker,label\n1,a,x\n1,b,y\n", ["--method", "mean"]),  # not numbers
        (
            "item,worker,label\n1,a,0\n1,b,1\n",
            ["--method", "mv", "--gold", "gold.csv"],
        ),  # gold item 999 absent
        ("", ["--method", "ds"]),  # zero bytes
        ("item,worker,label\n1,a,0\n1,b\n", ["--method", "mv"]),  # a row without label
        ("item,worker,label\n1,a,0\n", ["--method", "nosuchmethod"]),
        ("item,worker,label\n1,a,x|y\n1,b,y\n", ["--method", "glad"]),  # tags: GLAD gives no weights
        ("item,worker,label\n1,a,1\n1,b,2\n", ["--method", "mean", "--multilabel"]),  # ratings, not tags
        ("item,worker,label\n1,a,x\n2,b,y\n", ["--method", "ds", "--gold", "gold2.csv"]),  # gold: can't tell
    ],
)
def test_malformed_input_is_one_clear_line(tmp_path: Path, content: str, args: list[str]) -> None:
    (tmp_path / "a.csv").write_text(content)
    (tmp_path / "gold.csv").write_text("item,label\n999,1\n")
    (tmp_path / "gold2.csv").write_text("item,label\n1,can't tell\n")
    proc = run_cli("aggregate", "a.csv", *args, "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.csv").exists()


CANT = (
    "item,worker,label\n"
    "1,a,x\n1,b,can't tell\n1,c,can't tell\n1,d,Can't tell\n"  # can't tell is no class: x wins
    "2,a,can't tell\n2,b,can't tell\n"  # only can't tell: no label
    "3,a,y\n3,b,y\n3,c,x\n"
    + "".join(f"{i},{w},{'xy'[i % 2]}\n" for i in range(4, 12) for w in "abcd")  # enough for EM
)


@pytest.mark.parametrize("method", ["mv", "trust", "ds", "mace", "glad"])
def test_cant_tell_counts_toward_no_class(tmp_path: Path, method: str) -> None:
    (tmp_path / "a.csv").write_text(CANT)
    proc = run_cli("aggregate", "a.csv", "--method", method, "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "o.csv", dtype={"item": str, "label": str}).set_index("item")
    assert table.index.tolist()[:4] == ["1", "10", "11", "2"]  # every item, in string order
    assert [c for c in table.columns if c.startswith("p_")] == ["p_x", "p_y"]  # no "can't tell" class
    assert table.loc["1", "label"] == "x" and table.loc["3", "label"] == "y"
    assert pd.isna(table.loc["2", "label"]) and pd.isna(table.loc["2", "confidence"])
    assert "1 item(s) answered only" in proc.stderr


def test_cant_tell_ratings_count_toward_no_value(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("item,worker,label\nx,a,1\nx,b,can't tell\nx,c,3\ny,a,can't tell\n")
    proc = run_cli("aggregate", "r.csv", "--method", "mean", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "o.csv", dtype={"item": str}).set_index("item")
    assert table.loc["x", "value"] == pytest.approx(2.0) and pd.isna(table.loc["y", "value"])


TAGS = (
    "item,worker,label\n"
    "1,a,dog|bird\n1,b,bird|dog\n1,c,dog\n"  # sets: dog 3 of 3, bird 2 of 3
    "2,a,bird\n2,b,bird|cat\n2,c,bird\n2,d,can't tell\n"  # cat 1 of 3 answers that name tags
    "3,a,can't tell\n"
)


@pytest.mark.parametrize("method", ["mv", "trust", "ds", "mace"])
def test_multilabel_cells_are_sets_through_the_soft_label_rule(tmp_path: Path, method: str) -> None:
    (tmp_path / "a.csv").write_text(TAGS)
    proc = run_cli("aggregate", "a.csv", "--method", method, "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "o.csv", dtype={"item": str, "label": str}).set_index("item")
    assert [c for c in table.columns if c.startswith("p_")] == ["p_bird", "p_cat", "p_dog"]
    assert table.loc["1", "label"] == "bird|dog" and table.loc["2", "label"] == "bird"
    assert pd.isna(table.loc["3", "label"])
    if method in ("mv", "trust"):  # equal weights: the plain share of annotators (004_ eq. 1)
        assert table.loc["1", ["p_bird", "p_cat", "p_dog"]].tolist() == pytest.approx([2 / 3, 0, 1])
        assert table.loc["2", "p_cat"] == pytest.approx(1 / 3)


def test_gold_clamps_control_items_and_moves_skills(tmp_path: Path) -> None:
    """`--gold` with ds: control items are clamped (and left out of the table), so the expert
    whom a colluding pair outvotes there gains skill and the pair loses it."""
    rows, gold = ["item,worker,label"], ["item,label"]
    for i in range(30):
        true, wrong = ("a", "b") if i % 2 else ("b", "a")
        fooled = i % 5 < 2
        rows += [f"i{i},expert,{true}"] + [f"i{i},{w},{wrong if fooled else true}" for w in ("p1", "p2")]
        if fooled and i < 15:
            gold.append(f"i{i},{true}")
    known = {line.split(",")[0] for line in gold[1:]}
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "d.csv").write_text("\n".join(r for r in rows if r.split(",")[0] not in known) + "\n")
    (tmp_path / "g.csv").write_text("\n".join(gold) + "\n")
    skills = {}
    runs = (("plain", "a.csv", []), ("dropped", "d.csv", []), ("gold", "a.csv", ["--gold", "g.csv"]))
    for name, answers, extra in runs:
        proc = run_cli(
            "aggregate", answers, "--method", "ds", "--out", f"{name}.csv", "--workers-out", f"w{name}.csv",
            *extra, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        skills[name] = pd.read_csv(tmp_path / f"w{name}.csv").set_index("worker")["skill"]
    # clamped control answers teach more than leaving the control items out (the old --gold)
    assert skills["gold"]["expert"] > skills["dropped"]["expert"] > skills["plain"]["expert"]
    assert skills["gold"]["p1"] < skills["dropped"]["p1"] < skills["plain"]["p1"]
    labelled = pd.read_csv(tmp_path / "gold.csv", dtype=str)
    assert set(labelled["item"]).isdisjoint(known)


def test_missing_answers_file(tmp_path: Path) -> None:
    proc = run_cli("aggregate", "missing.csv", "--method", "mv", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_output_folder_must_exist_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli("aggregate", "a.csv", "--out", "o.csv", "--workers-out", "nodir/w.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "nodir" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.csv").exists()


def test_trust_without_checks_warns(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli("aggregate", "a.csv", "--method", "trust", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0 and "equals majority vote" in proc.stderr


def test_no_arguments_shows_help(tmp_path: Path) -> None:
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 0 and "aggregate" in proc.stdout and "error" not in proc.stderr


def test_crowdlab_counts_the_model_as_an_annotator(tmp_path: Path) -> None:
    """19 items answered alike by all three workers, the 20th split 2 to 1 for "0"; a classifier
    that matched the crowd on the 19 and is sure of "1" on the 20th tips it (majority vote: "0")."""
    rows = [(i, w, str(i % 2)) for i in range(1, 20) for w in "abc"] + [
        (20, "a", "0"),
        (20, "b", "0"),
        (20, "c", "1"),
    ]
    (tmp_path / "a.csv").write_text("item,worker,label\n" + "".join(f"{i},{w},{v}\n" for i, w, v in rows))
    model = [(i, 0.05, 0.95) if i % 2 else (i, 0.95, 0.05) for i in range(1, 20)] + [(20, 0.02, 0.98)]
    (tmp_path / "m.csv").write_text("item,p_0,p_1\n" + "".join(f"{i},{a},{b}\n" for i, a, b in model))
    proc = run_cli(
        "aggregate",
        "a.csv",
        "--method",
        "crowdlab",
        "--model-probas",
        "m.csv",
        "--out",
        "o.csv",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_csv(tmp_path / "o.csv", dtype={"item": str, "label": str}).set_index("item")["label"]
    assert labels["20"] == "1" and all(labels[str(i)] == str(i % 2) for i in range(1, 20))
    mv = run_cli("aggregate", "a.csv", "--method", "mv", "--out", "v.csv", cwd=tmp_path)
    assert mv.returncode == 0
    assert (
        pd.read_csv(tmp_path / "v.csv", dtype={"item": str, "label": str}).set_index("item")["label"]["20"]
        == "0"
    )
    missing = run_cli("aggregate", "a.csv", "--method", "crowdlab", "--out", "x.csv", cwd=tmp_path)
    assert missing.returncode != 0 and missing.stderr.strip().count("\n") == 0
    assert "--model-probas" in missing.stderr
    (tmp_path / "short.csv").write_text("item,p_0,p_1\n" + "".join(f"{i},0.5,0.5\n" for i in range(1, 19)))
    short = run_cli(
        "aggregate",
        "a.csv",
        "--method",
        "crowdlab",
        "--model-probas",
        "short.csv",
        "--out",
        "y.csv",
        cwd=tmp_path,
    )
    assert short.returncode != 0 and "no model probabilities for 2 item" in short.stderr
