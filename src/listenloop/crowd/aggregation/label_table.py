"""The labels table that `listenloop aggregate` writes: one row per item, from its answers.

The contracts for answers hold here as on the platform: "can't tell" counts toward no class
(the caller leaves those rows out: an item answered only "can't tell" keeps a row with no
label); multi-label cells are sets (`a|b` = `b|a`) and go through the soft-label rule
(004_ eq. 1, `crowd.soft_labels`) rather than being classes of their own; control items
(`gold`) are clamped in Dawid-Skene, MACE and GLAD and left out of the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation import registry
from listenloop.crowd.answers import TAG_SEP, per_tag_answers, tag_sets
from listenloop.crowd.soft_labels import hard_labels, soft_labels
from listenloop.errors import ListenloopError

CLAMPING = ("ds", "mace", "glad")  # methods that hold control items at their known class


def class_table(
    named: pd.DataFrame,
    regular: pd.DataFrame,
    items: pd.Index,
    method: str,
    trust: pd.Series | None,
    gold: dict[str, str],
) -> tuple[pd.DataFrame, pd.Series | None]:
    """One class per item: `item, label, confidence, p_<class>…` (empty where no class was named).

    `named`: the answers that name a class (can't tell left out); `regular`: those of items not
    in `gold`; `items`: the table's items in order; `trust` feeds the trust-weighted vote.
    """
    agg = registry.make_aggregator(method, trust=trust)
    if gold and method in CLAMPING:
        agg.fit(named, gold=gold)  # control answers clamp their items; the output leaves them out
    elif not regular.empty:
        agg.fit(regular)
    else:
        return pd.DataFrame({"item": items.astype(str), "label": None, "confidence": None}), None
    probas = agg.probas_.reindex(items)
    labels = agg.labels_.reindex(items)
    table = pd.DataFrame(
        {
            "item": items.astype(str),
            "label": labels.to_numpy(),
            "confidence": np.round(agg.confidence_.reindex(items).to_numpy(), 6),
        }
    )
    for cls in probas.columns:
        table[f"p_{cls}"] = np.round(probas[cls].to_numpy(), 6)
    return table, agg.skills_


def tag_table(
    named: pd.DataFrame,
    regular: pd.DataFrame,
    items: pd.Index,
    method: str,
    trust: pd.Series | None,
    gold: dict[str, str],
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Tags per item through the soft-label rule (004_ eq. 1, `crowd.soft_labels`): each tag's
    competence-weighted share of the annotators; the label is the tags over 0.5 (`a|b`, in
    tag order), the confidence the smallest distance of a share from 0.5, times 2.

    Competence: 1 (`mv`), trust (`trust`), or the skill that Dawid-Skene or MACE fits on the
    answers seen tag by tag as present/absent (`ds`, `mace`; gold items clamped).
    """
    if method == "glad":
        raise ListenloopError("multi-label answers: use mv, trust, ds or mace (GLAD gives no weights)")
    tags = sorted(set().union(*tag_sets(named["label"]))) if not named.empty else []
    tags = sorted(set(tags) | {t for cell in gold.values() for t in tag_sets(pd.Series([cell])).iloc[0]})
    competence: pd.Series | None = trust
    if method in ("ds", "mace") and not named.empty:
        binary = per_tag_answers(named, tags)
        sets = {item: tag_sets(pd.Series([cell])).iloc[0] for item, cell in gold.items()}
        gold_bin = {f"{item}\x1f{t}": "1" if t in cell else "0" for item, cell in sets.items() for t in tags}
        competence = registry.make_aggregator(method).fit(binary, classes=["0", "1"], gold=gold_bin).skills_
    if regular.empty:
        shares = pd.DataFrame(index=items, columns=tags, dtype=float)
    else:
        # the tag columns: every tag of the project, a tag nobody marked at share 0
        shares = soft_labels(regular, competence, default_competence=1.0).reindex(
            columns=tags, fill_value=0.0
        )
        shares = shares.reindex(items)
    active = hard_labels(shares.fillna(0.0))
    answered = shares.notna().all(axis=1).to_numpy()
    labels = [
        TAG_SEP.join(t for t in tags if row[t]) if ok else None
        for ok, (_, row) in zip(answered, active.iterrows(), strict=True)
    ]
    margin = (2 * (shares - 0.5).abs()).min(axis=1) if tags else pd.Series(np.nan, index=items)
    table = pd.DataFrame(
        {"item": items.astype(str), "label": labels, "confidence": np.round(margin.to_numpy(dtype=float), 6)}
    )
    for tag in tags:
        table[f"p_{tag}"] = np.round(shares[tag].to_numpy(dtype=float), 6)
    return table, competence
