"""Does `crowd.agreement` turn answers into the libraries' tables right? Its alpha and kappa on a
crowd's `item,worker,label` answers, against the same libraries fed by an independent conversion.

- alpha: `krippendorff.alpha(reliability_data=…)`, a workers × items matrix (NaN where a worker
  did not answer) pivoted from the answers with pandas, the library's other input (listenloop
  feeds it items × values counts);
- kappa: `statsmodels.stats.inter_rater.fleiss_kappa` of `aggregate_raters` (statsmodels' own
  items × raters → items × categories conversion) on the first k answers of each item with at
  least k (k as listenloop chooses it), picked with `groupby().head(k)`;
- per class: the same with the labels turned into "this class" / "another class".

`python -m listenloop.bench.agreement FOLDER…` (folders holding `answers.csv`) prints one
Markdown table row per set and statistic, and the time listenloop's computation took.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from listenloop.crowd.agreement import agreement


def independent(answers: pd.DataFrame, k: int) -> dict[str, float]:
    """Alpha and kappa of `answers` (item, worker, label as 0..n-1 codes), computed without
    `crowd.agreement`."""
    matrix = answers.pivot_table(index="worker", columns="item", values="label", aggfunc="first")
    alpha = krippendorff.alpha(reliability_data=matrix.to_numpy(dtype=float), level_of_measurement="nominal")
    counts = answers.groupby("item")["label"].transform("size")
    first = answers[counts >= k].groupby("item", sort=False).head(k)
    raters = np.stack([g.to_numpy() for _, g in first.groupby("item", sort=False)["label"]])
    table, _ = aggregate_raters(raters, n_cat=int(answers["label"].max()) + 1)
    return {"alpha": float(alpha), "kappa": float(fleiss_kappa(table))}


def compare(path: Path) -> list[dict[str, Any]]:
    """Rows `{set, statistic, listenloop, library, difference}` for one answers file, and the timing."""
    raw = pd.read_csv(path, dtype=str)
    classes = sorted(raw["label"].unique(), key=lambda v: (len(v), v))
    start, cpu = time.perf_counter(), time.process_time()
    ours = agreement(raw["item"].tolist(), raw["label"].tolist(), classes)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    k = ours["kappa_raters"]
    codes = raw.assign(label=raw["label"].map({c: i for i, c in enumerate(classes)}))
    theirs = {"all": independent(codes, k)}
    for i, c in enumerate(classes):
        theirs[c] = independent(codes.assign(label=(codes["label"] != i).astype(int)), k)
    name = path.parent.name
    rows = []
    for key, stats in [("all", ours), *((c["label"], c) for c in ours["classes"])]:
        for stat in ("alpha", "kappa"):
            mine, lib = stats[stat], theirs[key][stat]
            rows.append(
                {
                    "set": name,
                    "class": key,
                    "statistic": stat,
                    "listenloop": mine,
                    "library": lib,
                    "difference": abs(mine - lib),
                }
            )
    rows.append(
        {
            "set": name,
            "answers": len(raw),
            "items": ours["items"],
            "k": k,
            "kappa_items": ours["kappa_items"],
            "seconds": seconds,
            "cpu": cpu,
        }
    )
    return rows


def main(folders: list[str]) -> None:
    """Print the comparison of every set as Markdown."""
    print("| set | class | statistic | listenloop | independent | difference |")
    print("|---|---|---|---|---|---|")
    notes = []
    for folder in folders:
        for row in compare(Path(folder) / "answers.csv"):
            if "statistic" in row:
                print(
                    f"| {row['set']} | {row['class']} | {row['statistic']} | {row['listenloop']:.6f} | "
                    f"{row['library']:.6f} | {row['difference']:.1e} |"
                )
            else:
                notes.append(
                    f"{row['set']}: {row['answers']:,} answers, {row['items']:,} items with two or more; "
                    f"kappa on the first {row['k']} answers of {row['kappa_items']:,} items; listenloop's "
                    f"computation {row['seconds']:.2f} s ({row['cpu']:.2f} s of CPU)"
                )
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main(sys.argv[1:])
