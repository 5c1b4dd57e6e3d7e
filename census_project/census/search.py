"""The cross-validated grid search of train.py: the candidates, their CV scores, the refit of the winner.

``cross_validate`` returns exactly the scores that the textbook search would, that is one
``GridSearchCV(Pipeline([("preprocess", preprocessor), ("classifier", model)]), grid, cv=folds)`` per
model family (``plain_grid_search`` below, which the tests and benchmarks/census_search.py compare
with it), only several times faster on a laptop:

* the ColumnTransformer is fitted once per fold, and every candidate reuses the fold's matrices;
* forests that differ only in ``n_estimators`` are grown from one another (``warm_start``); with
  the same ``random_state`` the first 150 trees of a 300-tree forest ARE the 150-tree forest;
* forests are trained on a dense copy of the one-hot matrix: scikit-learn's dense tree splitter is
  several times faster than its sparse one and picks the same splits;
* (candidate family, fold) tasks run in parallel threads (tree building releases the GIL).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed

from cli import UserError

# Cross-validation scores of every candidate; the first one picks the winner.
SCORING = ["roc_auc", "accuracy", "f1"]
SELECTION_METRIC = SCORING[0]
DEFAULT_N_JOBS = os.cpu_count() or 1
# Types that MLflow's default model format (skops) refuses to load unless told to trust them: the
# imputers remember input dtypes, and forests store their trees in sklearn's Tree objects. We
# trust them because train.py itself wrote the file.
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "sklearn.tree._tree.Tree"]


@dataclass(frozen=True)
class Candidate:
    """One configuration of the grid: a model family and its searched hyper-parameters."""

    family: str  # "logistic" | "random_forest"
    params: tuple  # ((name, value), ...) in ParameterGrid order

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    @property
    def name(self) -> str:
        return f"{self.family}(" + ", ".join(f"{k}={v}" for k, v in self.params) + ")"

    def estimator(self, random_state: int, lr_max_iter: int):
        if self.family == "logistic":
            return LogisticRegression(max_iter=lr_max_iter, random_state=random_state, **self.param_dict)
        return RandomForestClassifier(random_state=random_state, **self.param_dict)


def make_candidates(grids: dict[str, dict[str, list]]) -> list[Candidate]:
    """Every configuration of each family's grid, in GridSearchCV's order (ParameterGrid)."""
    return [
        Candidate(family, tuple(sorted(params.items())))
        for family, grid in grids.items()
        for params in ParameterGrid(grid)
    ]


@dataclass
class CVResult:
    """The fold scores of one candidate, with GridSearchCV's mean and std."""

    candidate: Candidate
    fold_scores: dict = field(default_factory=dict)  # metric -> [score per fold]

    def mean(self, metric: str = SELECTION_METRIC) -> float:
        return float(np.average(self.fold_scores[metric]))

    def std(self, metric: str = SELECTION_METRIC) -> float:
        scores = np.asarray(self.fold_scores[metric])
        return float(np.sqrt(np.average((scores - np.average(scores)) ** 2)))  # as GridSearchCV does

    def cv_metrics(self) -> dict[str, float]:
        """``cv_<metric>_mean`` and ``cv_<metric>_std`` of every scoring metric, as logged per candidate."""
        return {f"cv_{m}_{stat}": getattr(self, stat)(m) for m in SCORING for stat in ("mean", "std")}


def best(results: list[CVResult], family: str | None = None) -> CVResult:
    """Highest mean CV ROC AUC; ties go to the earlier candidate (as in GridSearchCV)."""
    pool = [r for r in results if family is None or r.candidate.family == family]
    return max(pool, key=lambda r: r.mean())  # max() keeps the first of equal keys


def _dense(matrix):
    """Dense float32: the forest converts its input to float32 anyway, so this only saves work."""
    return (matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)).astype(np.float32)


def _score(estimator, X, y) -> dict:
    return {metric: float(get_scorer(metric)(estimator, X, y)) for metric in SCORING}


def _fit_and_score(chain: list[Candidate], fold: dict, random_state: int, lr_max_iter: int):
    """Fit the candidates of ``chain`` on one fold and score them on its validation part.

    A chain is one logistic candidate, or forests that differ only in ``n_estimators`` (growing
    order): each forest adds trees to the previous one instead of starting afresh.
    """
    started = time.perf_counter()
    scores = []
    if chain[0].family == "random_forest":
        X_fit, X_val = _dense(fold["X_fit"]), _dense(fold["X_val"])
        forest = chain[0].estimator(random_state, lr_max_iter).set_params(warm_start=True, n_jobs=1)
        for candidate in chain:
            forest.set_params(n_estimators=candidate.param_dict["n_estimators"]).fit(X_fit, fold["y_fit"])
            scores.append(_score(forest, X_val, fold["y_val"]))
    else:
        model = chain[0].estimator(random_state, lr_max_iter).fit(fold["X_fit"], fold["y_fit"])
        scores.append(_score(model, fold["X_val"], fold["y_val"]))
    return chain, fold["index"], scores, time.perf_counter() - started


def _chains(candidates: list[Candidate]) -> list[list[Candidate]]:
    """Group forests by everything but n_estimators (each group sorted by size); others alone."""
    groups: dict[tuple, list[Candidate]] = {}
    for candidate in dict.fromkeys(candidates):  # duplicates in a grid are scored once
        if candidate.family == "random_forest":
            key = tuple((k, v) for k, v in candidate.params if k != "n_estimators")
            groups.setdefault(("random_forest", key), []).append(candidate)
        else:
            groups[("logistic", candidate.params)] = [candidate]
    chains = [sorted(g, key=lambda c: c.param_dict.get("n_estimators", 0)) for g in groups.values()]
    # Biggest work first, so that the two workers finish together.
    return sorted(chains, key=lambda c: c[0].family != "random_forest")


def folds(cv_splits: int, random_state: int) -> StratifiedKFold:
    """The CV splitter both searches use: stratified, shuffled with the run's seed."""
    return StratifiedKFold(n_splits=cv_splits, shuffle=True, random_state=random_state)


def cross_validate(
    preprocessor, candidates, X, y, cv_splits, random_state, lr_max_iter, n_jobs=DEFAULT_N_JOBS, progress=print
) -> list[CVResult]:
    """Cross-validated scores of every candidate, equal to ``plain_grid_search``'s but faster."""
    fold_data = []
    for index, (fit_rows, val_rows) in enumerate(folds(cv_splits, random_state).split(X, y)):
        fold_preprocessor = clone(preprocessor)
        try:
            X_fit = fold_preprocessor.fit_transform(X.iloc[fit_rows])
            X_val = fold_preprocessor.transform(X.iloc[val_rows])
        except ValueError as problem:  # e.g. handle_unknown="error" meets a category unseen in the fold
            first_line = str(problem).splitlines()[0]
            raise UserError(
                f"ohe_handle_unknown: preprocessing fold {index + 1} failed ({first_line}). "
                "Use -P ohe_handle_unknown=ignore"
            ) from None
        fold_data.append(
            {"index": index, "X_fit": X_fit, "y_fit": y.iloc[fit_rows], "X_val": X_val, "y_val": y.iloc[val_rows]}
        )
    progress(f"  preprocessing fitted once per fold ({cv_splits} folds); {len(candidates)} candidates to score")

    tasks = [(chain, fold) for chain in _chains(candidates) for fold in fold_data]
    results = {c: CVResult(c, {m: [None] * cv_splits for m in SCORING}) for c in candidates}
    # Threads: the heavy part (tree building, BLAS) releases the GIL, and nothing is copied.
    parallel = Parallel(n_jobs=n_jobs, backend="threading", return_as="generator_unordered")
    tasks_done = parallel(delayed(_fit_and_score)(chain, fold, random_state, lr_max_iter) for chain, fold in tasks)
    for done, (chain, fold_index, scores, seconds) in enumerate(tasks_done, start=1):
        for candidate, candidate_scores in zip(chain, scores, strict=True):
            for metric, value in candidate_scores.items():
                results[candidate].fold_scores[metric][fold_index] = value
        sizes = (
            "+".join(str(c.param_dict["n_estimators"]) for c in chain) + " trees, "
            if chain[0].family == "random_forest"
            else ""
        )
        progress(f"  [{done}/{len(tasks)}] fold {fold_index + 1}/{cv_splits} {chain[-1].name}: {sizes}{seconds:.1f} s")
    return [results[c] for c in candidates]


def plain_grid_search(preprocessor, candidates, X, y, cv_splits, random_state, lr_max_iter, n_jobs=1) -> list[CVResult]:
    """The textbook way: one GridSearchCV over the whole pipeline per family. The reference that
    ``cross_validate`` must match exactly (used by the tests and benchmarks/census_search.py)."""
    results = {}
    for family in dict.fromkeys(c.family for c in candidates):
        family_candidates = [c for c in candidates if c.family == family]
        grid = {}
        for candidate in family_candidates:
            for name, value in candidate.params:
                grid.setdefault(f"classifier__{name}", [])
                if value not in grid[f"classifier__{name}"]:
                    grid[f"classifier__{name}"].append(value)
        base = family_candidates[0].estimator(random_state, lr_max_iter)
        pipeline = Pipeline([("preprocess", clone(preprocessor)), ("classifier", base)])
        search = GridSearchCV(
            pipeline, grid, scoring=SCORING, refit=False, cv=folds(cv_splits, random_state), n_jobs=n_jobs
        )
        search.fit(X, y)
        for i, params in enumerate(search.cv_results_["params"]):
            candidate = Candidate(family, tuple(sorted((k.removeprefix("classifier__"), v) for k, v in params.items())))
            results[candidate] = CVResult(
                candidate,
                {m: [float(search.cv_results_[f"split{k}_test_{m}"][i]) for k in range(cv_splits)] for m in SCORING},
            )
    return [results[c] for c in candidates]


def refit(preprocessor, candidate: Candidate, X, y, random_state, lr_max_iter, n_jobs=DEFAULT_N_JOBS) -> Pipeline:
    """Fit the winner on the whole training split: the same Pipeline as ``Pipeline.fit`` gives."""
    preprocess = clone(preprocessor)
    X_fit = preprocess.fit_transform(X)
    classifier = candidate.estimator(random_state, lr_max_iter)
    if candidate.family == "random_forest":
        classifier.set_params(n_jobs=n_jobs).fit(_dense(X_fit), y)
        classifier.set_params(n_jobs=None)  # predictions: one thread, same sum order every time
    else:
        classifier.fit(X_fit, y)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])
