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
from listenloop.crowd.soft_labels import SEP, answer_tags, hard_labels, presence_competence, soft_labels
from listenloop.errors import ListenloopError

CLAMPING = ("ds", "mace", "glad")  # methods that hold control items at their known class
ITEM_TAG = "\x1f"  # joins an item id and a tag into the id of that binary question


def per_tag_answers(answers: pd.DataFrame, tags: list[str]) -> pd.DataFrame:
    """Multi-label answers as binary ones, one per (answer, tag): `item` is item + ITEM_TAG + tag,
    `label` "1" where the cell names the tag and "0" where it does not (binary relevance), so a
    categorical aggregator estimates each worker's competence at telling the tags apart."""
    rows = [
        (f"{item}{ITEM_TAG}{tag}", worker, str(int(tag in named)))
        for item, worker, named in zip(
            answers["item"].astype(str),
            answers["worker"].astype(str),
            (answer_tags(str(c)) for c in answers["label"]),
            strict=True,
        )
        for tag in tags
    ]
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


def class_table(
    named: pd.DataFrame,
    regular: pd.DataFrame,
    items: pd.Index,
    method: str,
    trust: pd.Series | None,
    gold: dict[str, str],
    model_probas: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """One class per item: `item, label, confidence, p_<class>…` (empty where no class was named).

    `named`: the answers that name a class (can't tell left out); `regular`: those of items not
    in `gold`; `items`: the table's items in order; `trust` feeds the trust-weighted vote,
    `model_probas` (items x classes) CROWDLAB.
    """
    agg = registry.make_aggregator(method, trust=trust, model_probas=model_probas)
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
    cells = [str(c) for c in named["label"]]
    tags = sorted(set().union(*(answer_tags(c) for c in [*cells, *gold.values()])))
    competence: pd.Series | None = trust
    if method in ("ds", "mace") and cells:
        sets = {item: answer_tags(cell) for item, cell in gold.items()}
        gold_bin = {f"{item}{ITEM_TAG}{t}": str(int(t in cell)) for item, cell in sets.items() for t in tags}
        binary = per_tag_answers(named, tags)
        if method == "mace":  # the one MACE competence estimate (`presence_competence`)
            competence = presence_competence(binary, gold_bin)
        else:
            competence = (
                registry.make_aggregator(method).fit(binary, classes=["0", "1"], gold=gold_bin).skills_
            )
    if regular.empty:
        shares = pd.DataFrame(index=items, columns=tags, dtype=float)
    else:  # every tag is a column; a tag nobody marked on an item is at share 0 there
        shares = soft_labels(regular, competence, default_competence=1.0, classes=tags).reindex(items)
    active = hard_labels(shares.fillna(0.0))
    answered = shares.notna().all(axis=1).to_numpy()
    labels = [
        SEP.join(t for t in tags if row[t]) if ok else None
        for ok, (_, row) in zip(answered, active.iterrows(), strict=True)
    ]
    margin = (2 * (shares - 0.5).abs()).min(axis=1) if tags else pd.Series(np.nan, index=items)
    table = pd.DataFrame(
        {"item": items.astype(str), "label": labels, "confidence": np.round(margin.to_numpy(dtype=float), 6)}
    )
    for tag in tags:
        table[f"p_{tag}"] = np.round(shares[tag].to_numpy(dtype=float), 6)
    return table, competence
