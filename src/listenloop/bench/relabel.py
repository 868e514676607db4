"""`python -m listenloop.bench.relabel`: CROWDLAB's consensus against Dawid-Skene and majority vote.

Two kinds of sets:

- Real crowds (`../shared/data/crowd`: product, face): real answers and expert truth, but no
  audio and no features, so no classifier can be trained on them. The model's out-of-fold
  probabilities are simulated: right on a share `a` of the items (a = 0.6, 0.75, 0.9), its
  probability `a` on its pick and the rest spread evenly (calibrated, so that the figure
  measures the weighting, not a miscalibration), one fixed seed per set.
- Audio sets (FSDD, DCASE 2016 office): the features exist, the crowd does not: each clip gets
  `answers` answers from distinct annotators of `bench campaign`'s crowd (skills 0.95 ... 0.6
  and a spammer, its answer rule `campaign.class_answer`), and the model's probabilities are
  out of fold (5 folds, logistic regression on standardised MFCC features, trained on the
  majority-vote labels: no truth enters).

Accuracy of each consensus against the truth, per set.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd

from listenloop.bench.campaign import DEFAULT_SKILLS, class_answer
from listenloop.crowd.aggregation.crowdlab import CrowdLab
from listenloop.crowd.aggregation.dawid_skene import DawidSkene
from listenloop.crowd.aggregation.majority_vote import MajorityVote

MODEL_ACCURACIES = (0.6, 0.75, 0.9)


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    """Share of the truth's items whose label is right (an item without a label is wrong)."""
    got = labels.reindex(truth.index)
    return round(float((got.astype(str) == truth.astype(str)).mean()), 4)


def simulated_model(truth: pd.Series, classes: list[str], acc: float, seed: int) -> pd.DataFrame:
    """Calibrated probabilities of a classifier right on a share `acc` of the items."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    code = {c: i for i, c in enumerate(classes)}
    true = truth.map(code).to_numpy()
    pick = np.where(rng.random(len(true)) < acc, true, (true + rng.integers(1, k, len(true))) % k)
    p = np.full((len(true), k), (1 - acc) / (k - 1))
    p[np.arange(len(true)), pick] = acc
    return pd.DataFrame(p, index=truth.index, columns=classes)


def real_crowd(folder: Path) -> dict[str, float]:
    """Majority vote, Dawid-Skene and CROWDLAB at simulated model accuracies on one real crowd set."""
    answers = pd.read_csv(folder / "answers.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(folder / "truth.csv", dtype=str, keep_default_na=False).set_index("item")["truth"]
    classes = sorted(set(answers["label"]) | set(truth))
    items = pd.Index(sorted(set(answers["item"])))
    out = {
        "mv": accuracy(MajorityVote().fit_predict(answers), truth),
        "ds": accuracy(DawidSkene().fit_predict(answers), truth),
    }
    # items without truth get a random class for the simulated model (they are not scored)
    fill = pd.Series(np.random.default_rng(1).choice(classes, len(items)), index=items)
    full_truth = truth.reindex(items).fillna(fill)
    for acc in MODEL_ACCURACIES:
        lab = CrowdLab(simulated_model(full_truth, classes, acc, seed=7)).fit(answers, classes=classes)
        out[f"crowdlab_model_{acc:g}"] = accuracy(lab.labels_, truth)
        out[f"model_weight_{acc:g}"] = round(lab.model_weight_, 3)
    return out


def audio_features(folder: Path, clips: int | None) -> tuple[np.ndarray, pd.Series]:
    """MFCC features and truth of `folder`'s clips (a random `clips` of them, seed 0; None: all)."""
    from listenloop.features.extraction import extract_features, files_dataset

    data = files_dataset(folder)
    if clips is not None and clips < len(data.files):
        data = data.subset(np.asarray(sorted(random.Random(0).sample(range(len(data.files)), clips))))
    table = extract_features(data, "mfcc", progress=False)
    files = [data.files[i] for i in table.kept]
    return np.asarray(table.X), pd.Series([str(data.labels[i]) for i in table.kept], index=files)


def audio_set(X: np.ndarray, truth: pd.Series, answers_per_clip: int, seed: int) -> dict[str, float]:
    """A simulated crowd on an audio set, the model out of fold from its MFCC features `X`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = sorted(set(truth))
    rng = random.Random(seed)
    answer = class_answer(classes)
    rows = []
    for f, t in truth.items():
        for j in rng.sample(range(len(DEFAULT_SKILLS)), answers_per_clip):
            rows.append((f, f"a{j}", answer(t, DEFAULT_SKILLS[j], rng)))
    answers = pd.DataFrame(rows, columns=["item", "worker", "label"])
    mv = MajorityVote().fit(answers)
    target = mv.labels_.reindex(truth.index).to_numpy()
    learner = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    probas = cross_val_predict(learner, X, target, cv=folds, method="predict_proba")
    model = pd.DataFrame(probas, index=truth.index, columns=sorted(set(target)))
    for c in classes:  # a class no majority named gets probability 0
        if c not in model.columns:
            model[c] = 0.0
    lab = CrowdLab(model[classes]).fit(answers, classes=classes)
    return {
        "mv": accuracy(mv.labels_, truth),
        "ds": accuracy(DawidSkene().fit_predict(answers), truth),
        "crowdlab": accuracy(lab.labels_, truth),
        "model_alone": accuracy(model[classes].idxmax(axis=1), truth),
        "model_weight": round(lab.model_weight_, 3),
        "mean_annotator_weight": round(float(lab.annotator_weights_.mean()), 3),
        "temperature": round(lab.temperature_, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--answers", type=int, default=3, help="answers per clip on the audio sets")
    parser.add_argument("--seeds", type=int, default=3, help="crowd draws per audio set")
    parser.add_argument("--clips", type=int, default=600, help="FSDD clips (a random sample; 0: all)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out: dict[str, object] = {}
    for name in ("product", "face"):
        out[name] = real_crowd(args.shared / "crowd" / name)
        print(name, out[name], flush=True)
    for name in ("fsdd", "dcase2016-office"):
        X, truth = audio_features(args.shared / name, (args.clips or None) if name == "fsdd" else None)
        runs = [audio_set(X, truth, args.answers, s) for s in range(args.seeds)]
        mean = {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}
        out[name] = {"mean": mean, "runs": runs}
        print(name, mean, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
