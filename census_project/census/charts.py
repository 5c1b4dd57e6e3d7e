"""Metrics and charts of train.py (the candidates, the winner on held-out rows) and test.py.

Each chart function returns ``{artifact path: matplotlib figure}``; the scripts log them with
``mlflow.log_figure`` themselves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
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


def _figure(title: str, size=(5, 4.5)):
    figure, axes = plt.subplots(figsize=size)
    axes.set_title(title)
    return figure, axes


def evaluation_charts(y_true, probability, label: str, calibration: bool = False) -> dict:
    """Confusion matrix, ROC and precision-recall curves (and calibration) of one model's scores."""
    predicted = (np.asarray(probability) >= 0.5).astype(int)
    charts = {}
    figure, axes = _figure(f"Confusion matrix: {label}")
    ConfusionMatrixDisplay.from_predictions(y_true, predicted, display_labels=CLASS_NAMES, ax=axes, colorbar=False)
    charts["charts/confusion_matrix.png"] = figure
    figure, axes = _figure("ROC curve")
    RocCurveDisplay.from_predictions(y_true, probability, ax=axes, name=label, plot_chance_level=True)
    charts["charts/roc_curve.png"] = figure
    figure, axes = _figure("Precision-recall curve")
    PrecisionRecallDisplay.from_predictions(y_true, probability, ax=axes, name=label, plot_chance_level=True)
    charts["charts/pr_curve.png"] = figure
    if calibration:
        figure, axes = _figure("Calibration (reliability) curve")
        CalibrationDisplay.from_predictions(y_true, probability, n_bins=10, ax=axes, name=label)
        charts["charts/calibration.png"] = figure
    for figure in charts.values():
        figure.tight_layout()
    return charts


def cv_chart(results, winner, metric: str = "roc_auc") -> dict:
    """One bar per candidate: mean CV score with its standard deviation; the winner in bold."""
    names = [r.candidate.name for r in results]
    colors = ["tab:blue" if r.candidate.family == "logistic" else "tab:green" for r in results]
    figure, axes = _figure(
        "Cross-validation score per candidate (blue: logistic, green: random forest)", (8, 0.5 * len(results) + 1.5)
    )
    axes.barh(names, [r.mean(metric) for r in results], xerr=[r.std(metric) for r in results], color=colors)
    low = min(r.mean(metric) - r.std(metric) for r in results)
    axes.set_xlim(max(0.0, low - 0.01), 1.0)
    axes.invert_yaxis()
    axes.set_xlabel(f"mean cross-validated {metric} (± std)")
    for label in axes.get_yticklabels():
        if label.get_text() == winner.candidate.name:
            label.set_fontweight("bold")
    figure.tight_layout()
    return {"charts/cv_scores.png": figure}


def feature_chart(model, top: int = 20) -> dict:
    """Feature importances (forest) or coefficients (logistic regression) of the fitted pipeline."""
    names = model.named_steps["preprocess"].get_feature_names_out()
    classifier = model.named_steps["classifier"]
    if hasattr(classifier, "feature_importances_"):
        values, what = classifier.feature_importances_, "impurity-based importance"
    else:
        values, what = classifier.coef_[0], "coefficient (standardised inputs)"
    order = np.argsort(np.abs(values))[::-1][:top]
    figure, axes = _figure(f"Top {len(order)} features of the winner", (8, 0.3 * len(order) + 1.5))
    axes.barh([names[i] for i in order], values[order], color="tab:purple")
    axes.invert_yaxis()
    axes.set_xlabel(what)
    figure.tight_layout()
    return {"charts/feature_importance.png": figure}
