"""Relabel or label new: one score that ranks "ask again" against "ask new" (ActiveLab).

Goh and Mueller, "ActiveLab: Active Learning with Re-Labeling by Multiple Annotators" (2023).
Every answer spent is either one more answer on an item already heard or a first answer on a
new one. ActiveLab scores both on one scale, lower = ask sooner:

- an item already heard: its CROWDLAB consensus quality q (`aggregation.crowdlab`: the
  posterior of its consensus class, the model counted as one weighted annotator), pulled
  towards chance (1 / K) by one average annotator:
  (q (sum of its answers' weights + w_model) + (1 / K) w_avg) / (sum + w_model + w_avg);
- a new item: the model's confidence (its top class probability) in the same average:
  (max_k P[k] w_model + (1 / K) w_avg) / (w_model + w_avg).

So an item with split answers (low q) outranks a new item the model is sure of, a new item
the model cannot place outranks an item with agreeing answers, and the more answers an item
has the less one more moves it. Before the weights the model's probabilities are temperature
scaled (`aggregation.crowdlab.best_temperature`: the temperature that best fits the answers'
vote shares on items with several answers, as ActiveLab does), so an over- or under-confident
model is put on the crowd's scale. One implementation serves the platform's learning round
(`engine.learning.relabel`), `bench campaign` through it and `bench relabel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.crowdlab import CrowdLab, model_matrix, temperature_scale
from listenloop.crowd.answers import is_cant_tell
from listenloop.errors import ListenloopError


@dataclass
class RelabelScores:
    """ActiveLab scores (lower: ask sooner) of the items heard and of the new ones, and what
    they came from."""

    heard: pd.Series  # item -> score, items with at least one class answer
    new: pd.Series  # item -> score, items of `model_probas` with none
    consensus: pd.Series  # heard item -> CROWDLAB consensus class
    temperature: float
    model_weight: float
    mean_annotator_weight: float

    def order(self) -> list[str]:
        """Every item, lowest score first (ties: heard before new, then by item id)."""
        table = pd.DataFrame(
            {
                "score": np.concatenate([self.heard.to_numpy(), self.new.to_numpy()]),
                "new": np.r_[np.zeros(len(self.heard), bool), np.ones(len(self.new), bool)],
                "item": [*self.heard.index.astype(str), *self.new.index.astype(str)],
            }
        )
        return table.sort_values(["score", "new", "item"], kind="stable")["item"].tolist()


def relabel_scores(
    answers: pd.DataFrame,
    model_probas: pd.DataFrame,
    classes: Sequence[str] | None = None,
    gold: Mapping[str, str] | None = None,
    calibrate: bool = True,
) -> RelabelScores:
    """ActiveLab scores of every item of `model_probas` (index: item ids, one column per class:
    the model's out-of-fold probabilities for items it trained on, its predictions for the rest).

    `answers`: `item, worker, label` rows ("can't tell" names no class: an item with only such
    answers is scored as new). `classes` fixes the class list (default: the model's columns).
    `gold`: known classes of control items, clamped in the consensus. `calibrate`: temperature
    scale the model first (`best_temperature`).
    """
    probas_table = model_probas.copy()
    probas_table.index = probas_table.index.astype(str)
    probas_table.columns = probas_table.columns.astype(str)
    class_list = [str(c) for c in (classes if classes is not None else probas_table.columns)]
    if len(class_list) < 2:
        raise ListenloopError("relabel scores need at least two classes")
    table = answers.astype({"item": str, "worker": str, "label": str})
    table = table[~is_cant_tell(table["label"])]
    unknown = sorted(set(table["item"]) - set(probas_table.index))
    if unknown:
        raise ListenloopError(
            f"no model probabilities for {len(unknown)} answered item(s), e.g. {unknown[0]!r}"
        )
    K = len(class_list)
    temperature, model_weight, mean_weight = 1.0, 1.0, 1.0
    heard_ids = pd.Index(sorted(set(table["item"])), name="item")
    heard = np.zeros(0)
    consensus = pd.Series([], index=heard_ids[:0], dtype=object)
    if len(table):
        lab = CrowdLab(probas_table, calibrate=calibrate).fit(table, classes=class_list, gold=gold)
        temperature, model_weight = lab.temperature_, lab.model_weight_
        weights = lab.annotator_weights_
        mean_weight = float(weights.mean())
        quality = lab.confidence_.reindex(heard_ids).to_numpy()
        enc = lab.encoded_
        per_item = np.bincount(enc.items, weights=weights.to_numpy()[enc.workers], minlength=enc.n_items)
        answered_weight = pd.Series(per_item, index=pd.Index(enc.item_ids)).reindex(heard_ids).to_numpy()
        heard = (quality * (answered_weight + model_weight) + mean_weight / K) / (
            answered_weight + model_weight + mean_weight
        )
        consensus = lab.labels_.reindex(heard_ids)
    new_ids = probas_table.index.difference(heard_ids, sort=False)
    new_probas = model_matrix(probas_table, new_ids.to_numpy(), np.asarray(class_list))
    confidence = temperature_scale(new_probas, temperature).max(axis=1) if len(new_ids) else np.zeros(0)
    new = (confidence * model_weight + mean_weight / K) / (model_weight + mean_weight)
    return RelabelScores(
        heard=pd.Series(heard, index=heard_ids, name="score"),
        new=pd.Series(new, index=pd.Index(new_ids, name="item"), name="score"),
        consensus=consensus,
        temperature=temperature,
        model_weight=float(model_weight),
        mean_annotator_weight=mean_weight,
    )
