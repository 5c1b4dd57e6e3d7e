"""Metrics and charts shared by train.py (held-out evaluation of the winner) and test.py."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import CalibrationDisplay  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

CLASS_NAMES = ["<=50K", ">50K"]


def classification_metrics(y_true, probability) -> dict:
    """Accuracy, precision, recall, F1 (at the 0.5 threshold), ROC AUC and log loss."""
    predicted = (np.asarray(probability) >= 0.5).astype(int)
    return {
        "accuracy": accuracy_score(y_true, predicted),
        "precision": precision_score(y_true, predicted, zero_division=0),
        "recall": recall_score(y_true, predicted),
        "f1": f1_score(y_true, predicted),
        "roc_auc": roc_auc_score(y_true, probability),
        "log_loss": log_loss(y_true, probability, labels=[0, 1]),
    }


def _log(figure, path: str) -> None:
    figure.tight_layout()
    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_evaluation_charts(y_true, probability, label: str, folder: str = "charts", calibration=False) -> None:
    """Confusion matrix, ROC and precision-recall curves (and calibration) of one model's scores."""
    predicted = (np.asarray(probability) >= 0.5).astype(int)
    figure, axes = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(y_true, predicted, display_labels=CLASS_NAMES, ax=axes, colorbar=False)
    axes.set_title(f"Confusion matrix: {label}")
    _log(figure, f"{folder}/confusion_matrix.png")

    figure, axes = plt.subplots(figsize=(5, 4.5))
    RocCurveDisplay.from_predictions(y_true, probability, ax=axes, name=label, plot_chance_level=True)
    axes.set_title("ROC curve")
    _log(figure, f"{folder}/roc_curve.png")

    figure, axes = plt.subplots(figsize=(5, 4.5))
    PrecisionRecallDisplay.from_predictions(y_true, probability, ax=axes, name=label, plot_chance_level=True)
    axes.set_title("Precision-recall curve")
    _log(figure, f"{folder}/pr_curve.png")

    if calibration:
        figure, axes = plt.subplots(figsize=(5, 4.5))
        CalibrationDisplay.from_predictions(y_true, probability, n_bins=10, ax=axes, name=label)
        axes.set_title("Calibration (reliability) curve")
        _log(figure, f"{folder}/calibration.png")


def log_cv_chart(results, winner, metric: str = "roc_auc") -> None:
    """One bar per candidate: mean CV score with its standard deviation; the winner in bold."""
    names = [r.candidate.name for r in results]
    colors = ["tab:blue" if r.candidate.family == "logistic" else "tab:green" for r in results]
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(results) + 1.5))
    axes.barh(names, [r.mean(metric) for r in results], xerr=[r.std(metric) for r in results], color=colors)
    low = min(r.mean(metric) - r.std(metric) for r in results)
    axes.set_xlim(max(0.0, low - 0.01), 1.0)
    axes.invert_yaxis()
    axes.set_xlabel(f"mean cross-validated {metric} (± std)")
    axes.set_title("Cross-validation score per candidate (blue: logistic, green: random forest)")
    for label in axes.get_yticklabels():
        if label.get_text() == winner.candidate.name:
            label.set_fontweight("bold")
    _log(figure, "charts/cv_scores.png")


def log_feature_chart(model, top: int = 20) -> None:
    """Feature importances (forest) or coefficients (logistic regression) of the fitted pipeline."""
    names = model.named_steps["preprocess"].get_feature_names_out()
    classifier = model.named_steps["classifier"]
    if hasattr(classifier, "feature_importances_"):
        values, what = classifier.feature_importances_, "impurity-based importance"
    else:
        values, what = classifier.coef_[0], "coefficient (standardised inputs)"
    order = np.argsort(np.abs(values))[::-1][:top]
    figure, axes = plt.subplots(figsize=(8, 0.3 * len(order) + 1.5))
    axes.barh([names[i] for i in order], values[order], color="tab:purple")
    axes.invert_yaxis()
    axes.set_xlabel(what)
    axes.set_title(f"Top {len(order)} features of the winner")
    _log(figure, "charts/feature_importance.png")
