"""`listenloop aggregate`: labels (and worker skills) from a table of crowd answers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from listenloop.cli.app import app, check_outputs
from listenloop.errors import ListenloopError

if TYPE_CHECKING:
    import pandas as pd


def _read_gold(path: Path, answers: pd.DataFrame) -> dict[str, str]:
    """`item,label` of the control items; every gold item must occur among the answers."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        gold = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ListenloopError(f"{path}: empty file (expected columns item, label)") from None
    missing = [c for c in ("item", "label") if c not in gold.columns]
    if missing:
        raise ListenloopError(f"{path}: missing column(s) {', '.join(missing)}")
    from listenloop.crowd.answers import is_cant_tell

    no_class = np.flatnonzero(
        (gold["label"].str.strip() == "").to_numpy() | is_cant_tell(gold["label"]).to_numpy()
    )
    if len(no_class):
        raise ListenloopError(
            f"{path} line {no_class[0] + 2}: a gold item needs a class, not {gold['label'][no_class[0]]!r}"
        )
    absent = sorted(set(gold["item"]) - set(answers["item"]))
    if absent:
        raise ListenloopError(f"{path}: gold item(s) not among the answers: {', '.join(absent[:5])}")
    return dict(zip(gold["item"], gold["label"], strict=True))


def _read_model_probas(path: Path) -> pd.DataFrame:
    """`--model-probas`: item,<class>... (or p_<class>) as a DataFrame indexed by item, with clear errors."""
    import pandas as pd

    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, dtype={"item": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ListenloopError(f"{path}: not a readable CSV ({exc})") from None
    if "item" not in table.columns or len(table.columns) < 3:
        raise ListenloopError(f"{path}: needs an item column and one column per class")
    table = table.set_index("item")
    table.columns = [c[2:] if str(c).startswith("p_") else str(c) for c in table.columns]
    bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise ListenloopError(f"{path}: column {bad[0]!r} holds something other than numbers")
    return table


@app.command()
def aggregate(
    answers_csv: Annotated[Path, typer.Argument(help="Answers: item,worker,label[,kind].")],
    out: Annotated[Path, typer.Option("--out", help="Labels CSV to write.")],
    method: Annotated[
        str, typer.Option(help="mv, trust, ds, mace, glad, crowdlab; mean, median, trust_mean.")
    ] = "ds",
    gold: Annotated[
        Path | None,
        typer.Option(help="item,label of control items: trust, and clamped in ds, mace and glad."),
    ] = None,
    multilabel: Annotated[
        bool,
        typer.Option(
            "--multilabel",
            help="Cells are sets of tags (a|b); implied when a cell has '|'. Soft labels per tag.",
        ),
    ] = False,
    model_probas: Annotated[
        Path | None,
        typer.Option(
            help="crowdlab: a classifier's out-of-fold class probabilities, CSV item,<class>,... "
            "(or p_<class>, as this command writes them), one row per answered item."
        ),
    ] = None,
    workers_out: Annotated[Path | None, typer.Option(help="Write worker,skill,answers here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    """Aggregate crowd answers into one label (and a confidence) per item.

    "Can't tell" answers count toward no class: an item answered only "can't tell" gets no label.
    """
    import numpy as np
    import pandas as pd

    from listenloop.crowd.aggregation import registry
    from listenloop.crowd.aggregation.label_table import class_table, tag_table
    from listenloop.crowd.answers import is_cant_tell, is_multilabel, read_answers

    check_outputs({"--out": out, "--workers-out": workers_out}, force)
    registry.check_method(method)
    if (method == "crowdlab") != (model_probas is not None):
        raise ListenloopError("--model-probas goes with --method crowdlab, and crowdlab needs it")
    answers = read_answers(answers_csv)
    probas = _read_model_probas(model_probas) if model_probas is not None else None
    gold_labels = _read_gold(gold, answers) if gold is not None else {}
    trust = None
    if method in ("trust", "trust_mean"):
        from listenloop.crowd.trust import trust_from_answers

        trust = trust_from_answers(answers, gold_labels)
        if (
            not gold_labels
            and not answers.get("kind", pd.Series(dtype=str)).isin(["control", "consistency"]).any()
        ):
            print(
                "warning: no --gold and no control or consistency answers: every worker keeps the prior "
                "trust, so the trust-weighted vote equals majority vote",
                file=sys.stderr,
            )
    cant = is_cant_tell(answers["label"])
    named = answers[~cant]  # can't tell counts toward no class
    every_item = pd.Index(np.unique(answers["item"].to_numpy(dtype=str)), name="item")
    regular = named[~named["item"].isin(gold_labels)] if gold_labels else named
    items = every_item.difference(pd.Index(list(gold_labels)), sort=True) if gold_labels else every_item
    if items.empty:
        raise ListenloopError(f"{answers_csv}: every item is a gold item: nothing to aggregate")
    multi = multilabel or is_multilabel(named["label"])
    skills = None
    if method in registry.CONTINUOUS:
        from listenloop.crowd.aggregation import continuous

        if multilabel:
            raise ListenloopError(f"--multilabel: '{method}' is a method for ratings, not tags")
        if regular.empty:
            values = pd.Series(dtype=float)
        elif method == "trust_mean":
            values = continuous.trust_weighted_mean(regular, trust)
        else:
            values = {"mean": continuous.mean_ratings, "median": continuous.median_ratings}[method](regular)
        values = values.reindex(items)  # items answered only "can't tell": no value
        table = pd.DataFrame({"item": items.astype(str), "value": values.to_numpy()})
    elif multi and method == "crowdlab":
        raise ListenloopError("crowdlab aggregates classes, not sets of tags")
    elif multi:
        table, skills = tag_table(named, regular, items, method, trust, gold_labels)
    else:
        table, skills = class_table(named, regular, items, method, trust, gold_labels, probas)
    unlabelled = int(table[table.columns[1]].isna().sum())
    table.to_csv(out, index=False)
    if workers_out is not None:
        counts = answers.groupby("worker").size()
        skill = skills if skills is not None else (trust if trust is not None else pd.Series(dtype=float))
        pd.DataFrame(
            {
                "worker": counts.index,
                "skill": [skill.get(w, np.nan) for w in counts.index],
                "answers": counts.to_numpy(),
            }
        ).to_csv(workers_out, index=False)
    if unlabelled:
        print(f'note: {unlabelled} item(s) answered only "can\'t tell": no label', file=sys.stderr)
    print(f"wrote {len(table)} items to {out} ({method}{', multi-label' if multi else ''})")
