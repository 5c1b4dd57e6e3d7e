"""The UCI Adult data: loading it (offline by default), the train/held-out split and how it is
recorded in a training run, the rows a model never saw (what test.py tests it on), and the batches
that the monitor compares with the training split.

Every row keeps its position in the data file as ``row_id`` (the frame's index), so that the rows a
model was trained on, and the rows it never saw, can be named exactly across runs.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from census.model import CATEGORICAL_FEATURES, COLUMNS, NUMERIC_FEATURES, TARGET
from cli import UserError

__all__ = ["CATEGORICAL_FEATURES", "COLUMNS", "NUMERIC_FEATURES", "TARGET"]  # re-exported for the scripts

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "adult.data.gz"
DATA_SOURCES = ["local", "openml"]
OPENML_URL = "https://www.openml.org/d/1590"

# Where train.py stores the two halves of its split, inside the training run's artifacts.
SPLIT_DIR = "splits"
SPLIT_FILES = {"train": "train.csv", "held_out": "held_out.csv"}
MIN_TEST_ROWS = 500  # fewer rows than this that a model never saw: too few to test it on


def load_adult(data_source: str = "local") -> pd.DataFrame:
    """The 32,561 rows of adult.data shipped in data/ (``local``), or OpenML's copy (``openml``).
    ``income`` becomes 1 for ``>50K``, else 0; the index is the row's position in the file."""
    if data_source == "local":
        frame = pd.read_csv(DATA_FILE, header=None, names=COLUMNS, skipinitialspace=True, na_values="?")
    else:
        frame = _fetch_openml()
    frame[TARGET] = (frame[TARGET].astype(str).str.strip().str.rstrip(".") == ">50K").astype(int)
    frame.index.name = "row_id"
    return frame


def _fetch_openml() -> pd.DataFrame:
    """OpenML's "adult" v2 (48,842 rows: UCI's train + test files), renamed to our columns."""
    from sklearn.datasets import fetch_openml

    try:
        bunch = fetch_openml("adult", version=2, as_frame=True)
    except Exception as problem:  # no internet: URLError, TimeoutError, OSError...
        raise UserError(
            f"data_source=openml needs internet access to openml.org and failed ({type(problem).__name__}). "
            "Use -P data_source=local (the copy shipped in census_project/data/)"
        ) from None
    frame = bunch.frame.rename(
        columns={"capitalgain": "capital-gain", "capitalloss": "capital-loss", "hoursperweek": "hours-per-week"}
    ).rename(columns={"class": TARGET})
    for column in CATEGORICAL_FEATURES:
        frame[column] = frame[column].astype(str).replace({"nan": np.nan, "?": np.nan})
    for column in NUMERIC_FEATURES:
        frame[column] = frame[column].astype("int64")
    return frame[COLUMNS]


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns=[TARGET]), frame[TARGET]


def rows_hash(frame: pd.DataFrame) -> str:
    """A short fingerprint of which rows a split holds (their row ids), to compare splits at a glance."""
    ids = np.sort(frame.index.to_numpy(dtype=np.int64))
    return hashlib.sha256(ids.tobytes()).hexdigest()[:16]


def log_split(train: pd.DataFrame, held_out: pd.DataFrame, data_source: str) -> None:
    """Record both halves in the active run: as MLflow datasets (the run's Inputs in the UI) and as
    CSV artifacts with their row ids, so that test.py, monitor.py and the champion check read back
    exactly these rows."""
    source = DATA_FILE.as_posix() if data_source == "local" else OPENML_URL
    for context, frame in (("train", train), ("held_out", held_out)):
        log_dataset(frame, name=f"adult-{context}", context=context, source=source)
    with tempfile.TemporaryDirectory() as folder:
        for context, frame in (("train", train), ("held_out", held_out)):
            frame.to_csv(Path(folder) / SPLIT_FILES[context])  # with the row_id index
        mlflow.log_artifacts(folder, artifact_path=SPLIT_DIR)


def log_dataset(frame: pd.DataFrame, name: str, context: str, source: str | None = None) -> None:
    """``mlflow.log_input`` of a pandas frame (its schema, digest and row count show in the UI)."""
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file dataset source twice and says so; and it hints that
        # integer columns cannot hold missing values, true and harmless here.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name=name, targets=TARGET), context=context)


def load_split(run_id: str, which: str, parameter: str = "run_id") -> pd.DataFrame:
    """Half ``which`` (train | held_out) of the split logged by training run ``run_id``, indexed by
    row id. ``parameter`` names the command-line parameter that gave the id, for the error line."""
    try:
        mlflow.get_run(run_id)
    except MlflowException:
        raise UserError(
            f"{parameter}: no run {run_id!r} in the tracking store {mlflow.get_tracking_uri()}. "
            "Copy the training run id printed at the end of the train entry point"
        ) from None
    artifact = f"{SPLIT_DIR}/{SPLIT_FILES[which]}"
    # Into a folder removed after reading: without dst_path, MLflow downloads into a new temporary
    # folder per call and never removes it (0.7 MB per test or monitor run)
    with tempfile.TemporaryDirectory(prefix="census-split-") as folder:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=folder)
        except (MlflowException, OSError):
            raise UserError(
                f"{parameter}: run {run_id!r} has no {artifact} artifact, so it is not a training run of this "
                "project. Pass the id of a run made by the train entry point"
            ) from None
        return pd.read_csv(path, index_col="row_id")


def shifted_batch(held_out: pd.DataFrame, random_state: int) -> pd.DataFrame:
    """A deliberately drifted batch: the held-out rows resampled so that the population is older
    and managers/professionals are over-represented (as if the census were taken years later in a
    richer district). Same size as the held-out split, same columns."""
    older = np.exp((held_out["age"] - held_out["age"].median()) / 12.0)
    white_collar = np.where(held_out["occupation"].isin(["Exec-managerial", "Prof-specialty"]), 3.0, 1.0)
    return held_out.sample(n=len(held_out), replace=True, weights=older * white_collar, random_state=random_state)


def rows_unseen_by(model_uri: str, run_id: str, held_out: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of ``held_out`` (held out by training run ``run_id``) that the model at ``model_uri``
    never saw in training, and a line saying which rows they are. Refuses (``UserError``) when that
    cannot be known, or leaves too few rows to test on."""
    source = mlflow.models.get_model_info(model_uri).run_id
    if source == run_id:
        return held_out, f"the {len(held_out)} rows that training run {run_id} held out"
    fix = f"Test it with the run that trained it: -P run_id={source}" if source else "Pass the run that trained it"
    trained_by = mlflow.get_run(source) if source else None
    if trained_by is None or "data_source" not in trained_by.data.params:
        raise UserError(f"model_uri: {model_uri} was not trained by this project's train entry point. {fix}")
    if trained_by.data.params["data_source"] != mlflow.get_run(run_id).data.params.get("data_source"):
        raise UserError(f"model_uri: {model_uri} was trained on other data than run {run_id}. {fix}")
    unseen = held_out.drop(index=load_split(source, "train", "model_uri").index, errors="ignore")
    if len(unseen) < MIN_TEST_ROWS or unseen[TARGET].nunique() < 2:
        raise UserError(
            f"model_uri: {model_uri} was trained by run {source} on another split, and only {len(unseen)} of the "
            f"{len(held_out)} rows run {run_id} held out are new to it: too few to test on. {fix}"
        )
    return unseen, (
        f"the {len(unseen)} of the {len(held_out)} rows held out by run {run_id} that {model_uri} never saw "
        f"(it was trained by run {source} on another split)"
    )
