"""The UCI Adult data: loading it (offline by default), the train/held-out split, and the batches
that the monitor compares with the training split."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.model_selection import train_test_split

from census.params import BadParameter

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "adult.data.gz"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
TARGET = "income"  # 1 when the person earns more than $50K a year, else 0
NUMERIC_FEATURES = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL_FEATURES = [c for c in COLUMNS if c not in NUMERIC_FEATURES and c != TARGET]
DATA_SOURCES = ["local", "openml"]

# Where train.py stores the two halves of its split, inside the training run's artifacts.
SPLIT_DIR = "splits"
SPLIT_FILES = {"train": "train.csv", "held_out": "held_out.csv"}


def load_adult(data_source: str = "local") -> pd.DataFrame:
    """The 32,561 rows of adult.data shipped in data/ (``local``), or OpenML's copy (``openml``)."""
    if data_source == "local":
        frame = pd.read_csv(DATA_FILE, header=None, names=COLUMNS, skipinitialspace=True, na_values="?")
    elif data_source == "openml":
        frame = _fetch_openml()
    else:
        raise BadParameter(
            "data_source", f"{data_source!r} is not one of {', '.join(DATA_SOURCES)}", "Use -P data_source=local"
        )
    frame[TARGET] = (frame[TARGET].astype(str).str.strip().str.rstrip(".") == ">50K").astype(int)
    return frame


def _fetch_openml() -> pd.DataFrame:
    """OpenML's "adult" v2 (48,842 rows: UCI's train + test files), renamed to our columns."""
    from sklearn.datasets import fetch_openml

    try:
        bunch = fetch_openml("adult", version=2, as_frame=True)
    except Exception as problem:  # no internet: URLError, TimeoutError, OSError...
        raise BadParameter(
            "data_source",
            f"openml needs internet access to openml.org and failed ({type(problem).__name__})",
            "Use -P data_source=local (the copy shipped in census_project/data/)",
        ) from None
    frame = bunch.frame.rename(
        columns={
            "capitalgain": "capital-gain",
            "capitalloss": "capital-loss",
            "hoursperweek": "hours-per-week",
            "class": TARGET,
        }
    )
    for column in CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype(str).replace({"nan": np.nan, "?": np.nan})
    for column in NUMERIC_FEATURES:
        frame[column] = frame[column].astype("int64")
    return frame[COLUMNS]


def split(frame: pd.DataFrame, test_size: float, random_state: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified train/held-out split: both halves keep the share of ``income == 1``."""
    train, held_out = train_test_split(frame, test_size=test_size, random_state=random_state, stratify=frame[TARGET])
    return train, held_out


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[TARGET]), frame[TARGET]


def log_split(train: pd.DataFrame, held_out: pd.DataFrame, data_source: str) -> None:
    """Record both halves in the active run: as MLflow datasets (Inputs in the UI) and as CSV
    artifacts, so that test.py and monitor.py read back exactly these rows."""
    source = DATA_FILE.as_posix() if data_source == "local" else "https://www.openml.org/d/1590"
    for context, frame in (("train", train), ("held_out", held_out)):
        log_dataset(frame, name=f"adult-{context}", context=context, source=source)
    with tempfile.TemporaryDirectory() as folder:
        for context, frame in (("train", train), ("held_out", held_out)):
            frame.to_csv(Path(folder) / SPLIT_FILES[context], index=False)
        mlflow.log_artifacts(folder, artifact_path=SPLIT_DIR)


def log_dataset(frame: pd.DataFrame, name: str, context: str, source: str | None = None) -> None:
    """``mlflow.log_input`` of a pandas frame (its schema, digest and row count show in the UI)."""
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source twice and says so; and it hints that integer
        # columns cannot hold NaN, which is true and harmless here: silence both.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name=name, targets=TARGET), context=context)


def load_split(run_id: str, which: str) -> pd.DataFrame:
    """Half ``which`` (train | held_out) of the split logged by training run ``run_id``."""
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        raise BadParameter(
            "run_id",
            f"no run {run_id!r} in the tracking store {mlflow.get_tracking_uri()}",
            "Copy the training run id printed at the end of the train entry point",
        ) from None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{SPLIT_DIR}/{SPLIT_FILES[which]}")
    except (MlflowException, OSError):
        raise BadParameter(
            "run_id",
            f"run {run_id!r} has no {SPLIT_DIR}/{SPLIT_FILES[which]} artifact, "
            "so it is not a training run of this project",
            "Pass the id of a run made by the train entry point",
        ) from None
    return pd.read_csv(path)


def shifted_batch(held_out: pd.DataFrame, random_state: int) -> pd.DataFrame:
    """A deliberately drifted batch: the held-out rows resampled so that the population is older
    and managers/professionals are over-represented (as if the census were taken years later in a
    richer district). Same size as the held-out split, same columns."""
    older = np.exp((held_out["age"] - held_out["age"].median()) / 12.0)
    white_collar = np.where(held_out["occupation"].isin(["Exec-managerial", "Prof-specialty"]), 3.0, 1.0)
    return held_out.sample(n=len(held_out), replace=True, weights=older * white_collar, random_state=random_state)
