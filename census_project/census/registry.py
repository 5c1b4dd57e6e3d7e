"""The champion policy of train.py: an alias that always means "the best model we can vouch for".

Every training run registers a new version of ``adult-best-<family>``, tagged with its held-out
metrics and the identity of its split, and gives it the alias ``challenger``. The new version
becomes ``champion`` only when

* there is no champion yet, or
* it beats the champion on rows that NEITHER model saw in training: with the same split, the shared
  held-out rows (their recorded metrics compare directly); with another seeded split of the same
  data, the rows that both runs held out (both models are scored on them here), or
* the user asks for it explicitly with ``-P promote=true``.

When the two cannot be compared honestly (other data, or too few shared held-out rows), the
champion stays and the line printed says how to promote by hand. The champion is never re-scored
on rows it was trained on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.metrics import roc_auc_score

from census import data

CHAMPION, CHALLENGER = "champion", "challenger"
METRIC = "roc_auc"  # the selection metric of the grid search, on held-out rows
MIN_SHARED_ROWS = 500  # fewer rows held out by both runs than this: no honest comparison
# Model version tags: the held-out score and the split identity the comparison reads.
TAG_SCORE, TAG_SOURCE, TAG_ROWS = f"held_out_{METRIC}", "data_source", "held_out_rows"


def version_tags(metrics: dict, data_source: str, test_size: float, random_state: int, held_out) -> dict:
    """The tags of a new model version: its held-out metrics and the identity of its split."""
    tags = {f"held_out_{name}": f"{value:.6f}" for name, value in metrics.items()}
    tags |= {TAG_SOURCE: data_source, "test_size": str(test_size), "random_state": str(random_state)}
    return tags | {TAG_ROWS: data.rows_hash(held_out)}


@dataclass
class Decision:
    promote: bool
    message: str  # one line: what was decided and why


def decide(name: str, version, model, held_out: pd.DataFrame, promote: bool) -> Decision:
    """Should ``version`` (``model``: its fitted pipeline, ``held_out``: its held-out rows) become champion?"""
    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return Decision(True, f"version {version.version} is the first {CHAMPION} of {name}")
    now = f"{CHAMPION} is now version {version.version} (was version {champion.version})"
    stays = f"{CHAMPION} stays version {champion.version}"
    if promote:
        return Decision(True, f"{now}: promoted by -P promote=true")

    ours, theirs = version.tags, champion.tags
    if ours.get(TAG_SOURCE) != theirs.get(TAG_SOURCE) or TAG_ROWS not in theirs:
        return Decision(
            False,
            f"{stays}: cannot compare (it was trained on {theirs.get(TAG_SOURCE, 'unknown')} data, this run on "
            f"{ours[TAG_SOURCE]}). Promote this version explicitly with -P promote=true if you trust it",
        )
    if ours[TAG_ROWS] == theirs[TAG_ROWS]:  # the same held-out rows: the recorded scores compare directly
        new, old = float(ours[TAG_SCORE]), float(theirs[TAG_SCORE])
        where = "the same held-out rows"
    else:  # another split: score both models on the rows both runs held out
        shared = held_out.index.intersection(data.load_split(champion.run_id, "held_out").index)
        X, y = data.features_and_target(held_out.loc[shared])
        if len(shared) < MIN_SHARED_ROWS or y.nunique() < 2:
            return Decision(
                False,
                f"{stays}: only {len(shared)} rows were held out by both runs, too few to compare. "
                "Train with the champion's test_size and random_state, or promote with -P promote=true",
            )
        champion_model = load_census_model(f"models:/{name}/{champion.version}")
        new = roc_auc_score(y, model.predict_proba(X)[:, 1])
        old = roc_auc_score(y, champion_model.predict_proba(X))
        where = f"the {len(shared)} rows that neither model was trained on"
    if new > old:
        return Decision(True, f"{now}: ROC AUC {new:.4f} > {old:.4f} on {where}")
    return Decision(False, f"{stays}: ROC AUC {new:.4f} <= {old:.4f} on {where}")


def load_census_model(model_uri: str):
    """The census model (census/model.py) at ``model_uri``, ready for predict_proba. It is downloaded
    into a folder removed once it is loaded (the pipeline is then in memory): without dst_path, MLflow's
    load_model downloads into a new temporary folder per call and never removes it."""
    with tempfile.TemporaryDirectory(prefix="census-model-") as folder:
        return mlflow.pyfunc.load_model(model_uri, dst_path=folder).unwrap_python_model()
