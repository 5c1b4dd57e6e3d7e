"""The census model as MLflow serves it: census rows in, income labels out (1 = more than $50K a year).

Why a wrapper around the scikit-learn pipeline? Census rows as people have them hold whole numbers
(``pd.read_csv`` makes them int64), missing values (NaN, null, ``?`` or empty) and stray spaces. No
MLflow column type takes both 39 and a missing age: it refuses int64 where the signature says double,
and float (what pandas makes of a column with a missing value) where it says long. So the signature
below keeps the real column names, types the categories as strings and the numbers as "any", and
this model checks and casts every value itself: a number, or empty/``?``/null for missing; anything
else is refused with one clear message naming the column.

train.py logs it as "model from code" (``mlflow.pyfunc.log_model(python_model=<this file>,
artifacts={"pipeline": ...})``): MLflow stores this file with the model and runs it at load time,
so ``mlflow models serve`` needs nothing else from this project. Keep it self-contained.
"""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

NUMERIC_FEATURES = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL_FEATURES = [
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
TARGET = "income"  # 1 when the person earns more than $50K a year, else 0
# The columns of the UCI file, in its order; a model input is every column but the target.
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
    TARGET,
]
FEATURES = [column for column in COLUMNS if column != TARGET]
MISSING_TEXT = {"", "?"}  # how the census file writes a missing value

# Every column "optional" for MLflow, so that a missing one reaches predict() and gets the clear
# message below rather than MLflow's dump of the whole input.
SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(AnyType() if column in NUMERIC_FEATURES else DataType.string, column, required=False)
            for column in FEATURES
        ]
    ),
    outputs=Schema([ColSpec(DataType.long, TARGET)]),
)


def bad_input(message: str) -> MlflowException:
    """A clear HTTP 400 for `mlflow models serve`, one line for Python callers."""
    return MlflowException.invalid_parameter_value(message)


def _missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in MISSING_TEXT


def _number(column: str, value) -> float:
    if _missing(value):
        return np.nan
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad_input(
            f"column {column!r} must be a number (or empty, ? or null when missing), got {value!r}"
        ) from None


def _text(column: str, value) -> str | float:
    if _missing(value):
        return np.nan
    if not isinstance(value, str):
        raise bad_input(f"column {column!r} must be text such as a category name, got {value!r}")
    return value.strip()


def census_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the pipeline takes them: every census column, numbers as float64, categories as
    text without stray spaces, NaN for every missing value. Refuses anything else, naming the column."""
    missing = [column for column in FEATURES if column not in frame.columns]
    unknown = [str(column) for column in frame.columns if column not in FEATURES]
    if missing or unknown:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        raise bad_input(f"{'; '.join(problems)}. A census row has exactly these columns: {', '.join(FEATURES)}")
    rows = pd.DataFrame(index=frame.index)
    for column in FEATURES:
        cast = _number if column in NUMERIC_FEATURES else _text
        rows[column] = [cast(column, value) for value in frame[column].tolist()]
    return rows.astype({column: "float64" if column in NUMERIC_FEATURES else "object" for column in FEATURES})


class CensusModel(mlflow.pyfunc.PythonModel):
    """The fitted scikit-learn pipeline behind a census-row interface."""

    def load_context(self, context) -> None:
        self.pipeline = mlflow.sklearn.load_model(context.artifacts["pipeline"])

    def predict(self, context, model_input: pd.DataFrame) -> np.ndarray:
        """The income label of each row: 1 = more than $50K a year, 0 = at most $50K."""
        return self.pipeline.predict(census_rows(model_input)).astype("int64")

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """P(income > $50K) of each row (test.py and the champion check use it)."""
        return self.pipeline.predict_proba(census_rows(rows))[:, 1]


mlflow.models.set_model(CensusModel())
