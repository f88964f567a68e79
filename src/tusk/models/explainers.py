"""Explainers: how much each input column moved one prediction, trained beside the model and served with it.

An explainer is an artifact of the training pipeline: ``explainer.json`` beside the model file, written by
:func:`write_explainer` from the fitted model and a sample of its training data. Its format
(``tusk-explainer:v1``) is data only: the method, the model file it explains, the model's input columns and a
background sample of training rows. Reading it unpickles nothing. The manifest hashes it and links it to its
model (``ModelEntry.explainer``), so serving verifies it with the model, loads it beside the model and
hot-swaps both as one.

The attributions of a row are per *input column* (a one-hot encoder's columns are summed back to the column
they encode), and they add up to the explained output minus the base value (the output's mean over the
background):

- ``linear``: a linear model (``coef_``, ``intercept_``), bare or at the end of a scikit-learn pipeline.
  The exact SHAP values under feature independence, which shap's ``LinearExplainer`` computes too:
  ``w_j * (z_j - E[z_j])`` for each transformed column ``j``, ``E`` over the background. Output: the
  log-odds of the class for a binary classifier (the decision function's column for several classes), the
  prediction for a regressor. numpy only.
- ``tree``: a tree ensemble (scikit-learn's forests and boosting, XGBoost, LightGBM), at the end of a
  pipeline or bare, by shap's ``TreeExplainer`` (interventional, the background as its data). Output: the
  model's raw output (log-odds for gradient boosting, probability for a random forest's classes). Needs
  shap: ``pip install 'tusk[explain]'``.
- ``sampling``: any model. Shapley values estimated by permutation sampling over the input columns
  (antithetic pairs of permutations with a fixed seed, so one row always gets one answer), against the
  background rows; their sum is exact. Output: the probability of the class for a classifier with
  ``predict_proba``, else the prediction. numpy only; it calls the model ``8 x 32 x (columns + 1)`` times
  per row, so a request explains at most 100 rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tusk.errors import InputError, ModelUnloadable
from tusk.models.manifest import EXPLAINER

if TYPE_CHECKING:
    from tusk.models.loaders import LoadedModel

__all__ = ["FORMAT", "METHODS", "Attributions", "Explainer", "build_explainer", "load_explainer",
           "write_explainer"]

FORMAT = "tusk-explainer:v1"
METHODS = ("linear", "tree", "sampling")
MAX_BACKGROUND = 1000  # rows of background an explainer may carry
MAX_ROWS = {"linear": 100_000, "tree": 1000, "sampling": 100}  # rows one request may ask to explain
_PERMUTATIONS = 8  # sampling: four antithetic pairs
_SAMPLING_BACKGROUND = 32  # sampling: background rows each permutation is played against
_SEED = 20260917


@dataclass(frozen=True)
class Attributions:
    """Per-row attributions: ``values[i, j]`` is column ``columns[j]``'s share of row ``i``'s output."""

    columns: list[str]
    values: np.ndarray[Any, Any]  # (rows, columns)
    base_value: float  # the output's mean over the background: base_value + values.sum(1) = the output
    output: str  # log_odds | decision_function | probability | raw | value
    target: str | None  # the class whose output is explained (None for a regressor)
    method: str


# -- the training side ---------------------------------------------------------------------------------------

def build_explainer(model: Any, background: Any, *, model_file: str = "model.joblib", method: str = "auto",
                    rows: int = 100, seed: int = 0) -> dict[str, Any]:
    """The ``explainer.json`` document for a fitted ``model`` (saved as ``model_file`` beside it), with up to
    ``rows`` rows of ``background`` (a DataFrame of training rows, or a matrix). ``method="auto"`` picks
    ``linear`` for a linear model whose preprocessing maps back to its columns, ``tree`` for a tree ensemble,
    else ``sampling``."""
    if method != "auto" and method not in METHODS:
        raise ValueError(f"method must be auto or one of {', '.join(METHODS)}, not {method!r}")
    if not 1 <= rows <= MAX_BACKGROUND:
        raise ValueError(f"rows must be between 1 and {MAX_BACKGROUND}")
    names = getattr(model, "feature_names_in_", None)
    if hasattr(background, "columns"):  # a DataFrame
        columns = [str(c) for c in names] if names is not None else [str(c) for c in background.columns]
        frame = background[columns]
        if len(frame) > rows:
            frame = frame.sample(n=rows, random_state=seed)
        lists = [frame[c].tolist() for c in columns]
        data = [[_plain(v) for v in row] for row in zip(*lists, strict=True)]
        sample: Any = frame
    else:
        matrix = np.asarray(background, dtype=float)
        if matrix.ndim != 2:
            raise ValueError("background must be a DataFrame or a 2-D matrix of training rows")
        if len(matrix) > rows:
            matrix = matrix[np.random.default_rng(seed).choice(len(matrix), rows, replace=False)]
        columns = [f"x{i}" for i in range(matrix.shape[1])]
        data = [[_plain(v) for v in row] for row in matrix.tolist()]
        sample = matrix
    if method == "auto":
        method = _auto_method(model, columns, sample)
    return {"format": FORMAT, "model": model_file, "method": method, "columns": columns, "background": data}


def write_explainer(directory: Path, model: Any, background: Any, **options: Any) -> dict[str, Any]:
    """Write ``directory/explainer.json`` (see :func:`build_explainer`) and return the document."""
    doc = build_explainer(model, background, **options)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXPLAINER).write_text(json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
                                       + "\n")
    return doc


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _plain(v.item())
    return v


def _auto_method(model: Any, columns: list[str], sample: Any) -> str:
    pre, final = _split(model)
    if hasattr(final, "coef_") and hasattr(final, "intercept_"):
        try:
            _Linear(pre, final, columns, sample)
            return "linear"
        except (ValueError, TypeError, AttributeError):
            pass
    return "tree" if _is_tree(final) else "sampling"


def _is_tree(estimator: Any) -> bool:
    name = type(estimator).__name__
    return any(k in name for k in ("Forest", "Tree", "GradientBoosting", "XGB", "LGBM", "Booster"))


# -- the serving side ----------------------------------------------------------------------------------------

class Explainer:
    """A verified explainer document, prepared against the model it explains."""

    def __init__(self, path: str, method: str, columns: list[str], engine: Any, model: LoadedModel) -> None:
        self.path = path
        self.method = method
        self.columns = columns
        self._engine = engine
        self._model = model

    def explain(self, x: Any, target: Any = None) -> Attributions:
        """Attributions for the rows ``x`` (what the model's ``predict`` takes), for class ``target`` (a
        classifier's label; default: the positive class of a binary classifier)."""
        n = len(x)
        if n > MAX_ROWS[self.method]:
            raise InputError(f"the {self.method} explainer explains at most {MAX_ROWS[self.method]} rows per "
                             f"request, got {n}: send fewer rows")
        k, label = _target(self._model.classes, target)
        values, base, output = self._engine.explain(x, k)
        return Attributions(self.columns, np.asarray(values, dtype=float), float(base), output, label, self.method)

    def __repr__(self) -> str:
        return f"<Explainer {self.method} {self.path}>"


def load_explainer(path: str, data: bytes, model: LoadedModel) -> Explainer:
    """Prepare the (verified) explainer document at ``path`` for ``model``; ModelUnloadable says why it cannot
    explain it (a malformed document, another model's columns, a library that is not installed)."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ModelUnloadable(f"{path} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise ModelUnloadable(f"{path} is not a Tusk explainer (format {found!r}, expected {FORMAT!r}); write it "
                              "with tusk.models.explainers.write_explainer")
    method, columns, background = doc.get("method"), doc.get("columns"), doc.get("background")
    if method not in METHODS:
        raise ModelUnloadable(f"{path}: method {method!r} is not one of {', '.join(METHODS)}")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ModelUnloadable(f"{path}: columns must be a non-empty list of the model's input column names")
    if (not isinstance(background, list) or not background or len(background) > MAX_BACKGROUND
            or not all(isinstance(r, list) and len(r) == len(columns) for r in background)):
        raise ModelUnloadable(f"{path}: background must be 1 to {MAX_BACKGROUND} rows of {len(columns)} values")
    entry = model.entry
    named = doc.get("model")
    if entry.files == (entry.path,) and named != entry.path.rsplit("/", 1)[-1]:
        raise ModelUnloadable(f"{path} explains {named!r}, not {entry.path}")
    names = model.feature_names
    if names is not None and names != columns:
        raise ModelUnloadable(f"{path} is for the columns {', '.join(columns)}; the model takes "
                              f"{', '.join(names)}: train the explainer with this model")
    if names is None and model.n_features is not None and model.n_features != len(columns):
        raise ModelUnloadable(f"{path} has {len(columns)} columns; the model takes {model.n_features}")
    sample = _background(background, columns, named=names is not None)
    pre, final = _split(model.impl)
    try:
        engine: Any
        if method == "linear":
            engine = _Linear(pre, final, columns, sample)
        elif method == "tree":
            engine = _Tree(pre, final, columns, sample)
        else:
            engine = _Sampling(model, sample, names is not None)
    except ModelUnloadable:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        raise ModelUnloadable(f"{path}: the {method} explainer cannot explain {entry.path} "
                              f"({type(e).__name__}: {e})") from e
    return Explainer(path, method, columns, engine, model)


def _background(rows: list[list[Any]], columns: list[str], named: bool) -> Any:
    if not named:
        return np.asarray([[math.nan if v is None else v for v in r] for r in rows], dtype=float)
    import pandas as pd

    return pd.DataFrame(rows, columns=columns).infer_objects()


def _target(classes: Any, target: Any) -> tuple[int, str | None]:
    """(index of the explained class, its label): ``parameters.class`` names it; a binary classifier's
    default is its second (positive) class; a regressor has none."""
    if classes is None:
        if target is not None:
            raise InputError("this model is a regressor: it has no class to explain; leave out parameters.class")
        return 0, None
    labels = [str(c) for c in np.asarray(classes).tolist()]
    if target is None:
        if len(labels) == 2:
            return 1, labels[1]
        raise InputError(f"name the class to explain in parameters.class (one of {', '.join(labels)})")
    if str(target) not in labels:
        raise InputError(f"parameters.class {target!r} is not a class of this model ({', '.join(labels)})")
    k = labels.index(str(target))
    return k, labels[k]


def _split(impl: Any) -> tuple[Any, Any]:
    """(the preprocessing, the final estimator) of a scikit-learn pipeline; (None, the model) otherwise."""
    steps = getattr(impl, "steps", None)
    if isinstance(steps, list) and steps:
        return (impl[:-1] if len(steps) > 1 else None), steps[-1][1]
    return None, impl


def _dense(z: Any) -> np.ndarray[Any, Any]:
    return np.asarray(z.toarray() if hasattr(z, "toarray") else z, dtype=float)


def _transform(pre: Any, x: Any) -> np.ndarray[Any, Any]:
    return _dense(x if pre is None else pre.transform(x))


def _names_out(step: Any, names: list[str]) -> list[str]:
    try:
        return [str(n) for n in step.get_feature_names_out(names)]
    except (ValueError, TypeError):  # fitted on other names (a matrix inside a pipeline): its own
        return [str(n) for n in step.get_feature_names_out()]


def _groups(step: Any, names: list[str]) -> np.ndarray[Any, Any]:
    """For each output column of a fitted transformer, the index of the input column (of ``names``) it comes
    from: one-to-one for scalers, the encoded column for a one-hot encoder's columns."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return np.arange(len(names))
    if isinstance(step, str) and step == "drop":
        return np.zeros(0, dtype=int)
    if hasattr(step, "steps"):  # a Pipeline: compose its steps
        groups, current = np.arange(len(names)), list(names)
        for _, inner in step.steps:
            if inner is None or (isinstance(inner, str) and inner == "passthrough"):
                continue
            mapping = _groups(inner, current)
            current = _names_out(inner, current)
            groups = groups[mapping]
        return groups
    if hasattr(step, "transformers_"):  # a ColumnTransformer: each transformer's slice of the output
        indices, slices = step._transformer_to_input_indices, step.output_indices_
        width = max((s.stop for s in slices.values()), default=0)
        out = np.full(width, -1)
        for name, transformer, _ in step.transformers_:
            piece = slices.get(name)
            if piece is None or piece.stop == piece.start:
                continue
            source = np.asarray(indices[name], dtype=int)
            mapping = _groups(transformer, [names[i] for i in source])
            if len(mapping) != piece.stop - piece.start:
                raise ValueError(f"cannot tell which column each output of {name} comes from")
            out[piece] = source[mapping]
        if (out < 0).any():
            raise ValueError("some transformed columns come from no input column")
        return out
    outs = _names_out(step, names)
    order = sorted(range(len(names)), key=lambda i: -len(names[i]))  # the longest name that prefixes wins
    mapped = []
    for o in outs:
        match = next((i for i in order if o == names[i] or o.startswith(names[i] + "_")), None)
        if match is None:
            break
        mapped.append(match)
    if len(mapped) == len(outs):
        return np.asarray(mapped, dtype=int)
    if len(outs) == len(names):
        return np.arange(len(names))
    raise ValueError(f"cannot tell which input column each output of {type(step).__name__} comes from")


def _summed(values: np.ndarray[Any, Any], groups: np.ndarray[Any, Any], n_columns: int) -> np.ndarray[Any, Any]:
    """Transformed-column attributions (rows, F') summed into their input columns (rows, F)."""
    indicator = np.zeros((len(groups), n_columns))
    indicator[np.arange(len(groups)), groups] = 1.0
    return values @ indicator


class _Linear:
    def __init__(self, pre: Any, final: Any, columns: list[str], background: Any) -> None:
        z = _transform(pre, background)
        self.pre, self.groups, self.n = pre, _groups(pre, columns), len(columns)
        if len(self.groups) != z.shape[1]:
            raise ValueError(f"the preprocessing gives {z.shape[1]} columns, mapped {len(self.groups)}")
        self.coef = np.atleast_2d(np.asarray(final.coef_, dtype=float))
        self.intercept = np.atleast_1d(np.asarray(final.intercept_, dtype=float))
        if self.coef.shape[1] != z.shape[1]:
            raise ValueError(f"the model has {self.coef.shape[1]} coefficients for {z.shape[1]} columns")
        self.mean = z.mean(axis=0)
        self.classifier = getattr(final, "classes_", None) is not None
        if not self.classifier and self.coef.shape[0] != 1:
            raise ValueError("a regressor with several targets")

    def explain(self, x: Any, k: int) -> tuple[np.ndarray[Any, Any], float, str]:
        z = _transform(self.pre, x)
        sign, row = 1.0, k
        if self.coef.shape[0] == 1:  # a regressor, or a binary classifier's log-odds of its second class
            sign, row = (-1.0 if self.classifier and k == 0 else 1.0), 0
        w, b = sign * self.coef[row], sign * self.intercept[row]
        values = _summed((z - self.mean) * w, self.groups, self.n)
        output = "value" if not self.classifier else "log_odds" if self.coef.shape[0] == 1 else "decision_function"
        return values, float(self.mean @ w + b), output


def _shap() -> Any:
    try:
        import shap  # type: ignore[import-untyped]
    except ImportError as e:
        raise ModelUnloadable("the tree explainer needs 'shap', which is not installed: "
                              "pip install 'tusk[explain]'") from e
    return shap


class _Tree:
    def __init__(self, pre: Any, final: Any, columns: list[str], background: Any) -> None:
        shap = _shap()
        z = _transform(pre, background)
        self.pre, self.groups, self.n = pre, _groups(pre, columns), len(columns)
        if len(self.groups) != z.shape[1]:
            raise ValueError(f"the preprocessing gives {z.shape[1]} columns, mapped {len(self.groups)}")
        self.tree = shap.TreeExplainer(final, data=z, feature_perturbation="interventional")
        self.classifier = getattr(final, "classes_", None) is not None

    def explain(self, x: Any, k: int) -> tuple[np.ndarray[Any, Any], float, str]:
        z = _transform(self.pre, x)
        values = self.tree.shap_values(z, check_additivity=False)
        base = self.tree.expected_value
        if isinstance(values, list):  # older shap: one matrix per class
            values, base = values[k], np.atleast_1d(base)[k]
        else:
            values = np.asarray(values)
            if values.ndim == 3:  # (rows, columns, classes)
                values, base = values[:, :, k], np.atleast_1d(base)[k]
            else:  # one output (a regressor, or a binary classifier's log-odds of its second class)
                base = float(np.atleast_1d(base)[0])
                if self.classifier and k == 0:
                    values, base = -values, -base
        return _summed(np.asarray(values, dtype=float), self.groups, self.n), float(base), "raw"


class _Sampling:
    def __init__(self, model: LoadedModel, background: Any, named: bool) -> None:
        self.model, self.named = model, named
        self.columns = list(background.columns) if named else None
        self.background = _objects(background)[:_SAMPLING_BACKGROUND]
        f = self.background.shape[1]
        rng = np.random.default_rng(_SEED)
        perms = []
        for _ in range(_PERMUTATIONS // 2):
            p = rng.permutation(f)
            perms += [p, p[::-1]]
        self.perms = perms
        # masks[p, i, j]: column j comes from the explained row at step i of permutation p
        ranks = np.stack([np.argsort(p) for p in perms])
        self.masks = ranks[:, None, :] < np.arange(f + 1)[None, :, None]
        self.classifier = model.classes is not None and model.has_predict_proba

    def _frame(self, values: np.ndarray[Any, Any]) -> Any:
        if not self.named:
            return values.astype(float)
        import pandas as pd

        return pd.DataFrame(values, columns=self.columns).infer_objects()

    def _output(self, values: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
        x = self._frame(values)
        if self.classifier:
            return np.asarray(self.model.predict_proba(x), dtype=float)[:, k]
        try:
            return np.asarray(self.model.predict(x), dtype=float).reshape(len(values))
        except (TypeError, ValueError) as e:
            raise InputError("the sampling explainer explains a number: this model predicts labels and has "
                             "no predict_proba") from e

    def explain(self, x: Any, k: int) -> tuple[np.ndarray[Any, Any], float, str]:
        rows, bg, masks = _objects(x), self.background, self.masks
        p, b, f = len(self.perms), len(bg), bg.shape[1]
        out = np.zeros((len(rows), f))
        for r, row in enumerate(rows):
            hybrid = np.where(masks[:, None, :, :], row[None, None, None, :], bg[None, :, None, :])
            v = self._output(hybrid.reshape(-1, f), k).reshape(p, b, f + 1)
            steps = np.diff(v, axis=2).mean(axis=1)  # (permutations, positions)
            for i, perm in enumerate(self.perms):
                out[r, perm] += steps[i]
        base = float(self._output(bg, k).mean())
        output = "probability" if self.classifier else "value"
        return out / p, base, output


def _objects(x: Any) -> np.ndarray[Any, Any]:
    """Rows as a 2-D object array (a DataFrame's values keep their types; NaN stays NaN)."""
    if hasattr(x, "columns"):
        return np.column_stack([np.asarray(x[c].tolist(), dtype=object) for c in x.columns])
    return np.asarray(x, dtype=object)

