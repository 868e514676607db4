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
    absent = sorted(set(gold["item"]) - set(answers["item"]))
    if absent:
        raise ListenloopError(f"{path}: gold item(s) not among the answers: {', '.join(absent[:5])}")
    return dict(zip(gold["item"], gold["label"], strict=True))


@app.command()
def aggregate(
    answers_csv: Annotated[Path, typer.Argument(help="Answers: item,worker,label[,kind].")],
    out: Annotated[Path, typer.Option("--out", help="Labels CSV to write.")],
    method: Annotated[str, typer.Option(help="mv, trust, ds, mace, glad; mean, median, trust_mean.")] = "ds",
    gold: Annotated[Path | None, typer.Option(help="item,label of control items (trust).")] = None,
    workers_out: Annotated[Path | None, typer.Option(help="Write worker,skill,answers here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    """Aggregate crowd answers into one label (and a confidence) per item."""
    import numpy as np
    import pandas as pd

    from listenloop.crowd.aggregation import registry
    from listenloop.crowd.answers import read_answers

    check_outputs({"--out": out, "--workers-out": workers_out}, force)
    registry.check_method(method)
    answers = read_answers(answers_csv)
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
    regular = answers[~answers["item"].isin(gold_labels)] if gold_labels else answers
    if regular.empty:
        raise ListenloopError(f"{answers_csv}: every item is a gold item: nothing to aggregate")
    if method in registry.CONTINUOUS:
        from listenloop.crowd.aggregation import continuous

        if method == "trust_mean":
            values = continuous.trust_weighted_mean(regular, trust)
        else:
            values = {"mean": continuous.mean_ratings, "median": continuous.median_ratings}[method](regular)
        table = pd.DataFrame({"item": values.index.astype(str), "value": values.to_numpy()})
        skills = None
    else:
        agg = registry.make_aggregator(method, trust=trust).fit(regular)
        table = pd.DataFrame(
            {
                "item": agg.labels_.index,
                "label": agg.labels_.to_numpy(),
                "confidence": np.round(agg.confidence_.to_numpy(), 6),
            }
        )
        for cls in agg.probas_.columns:
            table[f"p_{cls}"] = np.round(agg.probas_[cls].to_numpy(), 6)
        skills = agg.skills_
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
    print(f"wrote {len(table)} items to {out} ({method})")
