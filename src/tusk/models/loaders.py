"""Turn verified model bytes into an object with ``predict``: scikit-learn, joblib, ONNX, MLflow pyfunc, Python class.

Every loader receives bytes that have already been checked against the
manifest, so nothing is deserialized before its hashes match. Loaders import
their library only when used; a missing library is a clear ``ModelUnloadable``.
Flavors with no loader here (torch, keras, ...) are still hashed, verified and
promoted; loading them says so.
"""

from __future__ import annotations

import importlib.util
import itertools
import pickle
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tusk.errors import ModelUnloadable
from tusk.models import joblib_in_place
from tusk.models.manifest import Manifest, ModelEntry
from tusk.storage.buffers import reader

if TYPE_CHECKING:
    from tusk.models.explainers import Explainer

__all__ = ["LOADERS", "FileBytes", "LoadedModel", "load_model"]

FileBytes = bytes | memoryview  # a verified file: a large one is a view of the one buffer it was read into


class LoadedModel:
    """A model ready to predict, with the manifest it was verified against."""

    def __init__(self, flavor: str, impl: Any, entry: ModelEntry, manifest: Manifest | None,
                 predict: Callable[[Any], Any], keep: object = None,
                 native: object = None) -> None:
        self.flavor = flavor
        self.impl = impl  # the library's own object (an sklearn estimator, an onnxruntime session, ...)
        self.entry = entry
        self.manifest = manifest
        self._predict = predict
        # what answers predict_proba and classes_ where ``impl`` does not (MLflow: the sklearn flavor's estimator)
        self._native = native if native is not None else impl
        self._keep = keep  # e.g. the directory an MLflow model was unpacked into; lives as long as the model
        self.explainer: Explainer | None = None  # its explainer.json, prepared (load_model attaches it)
        self.explainer_error: str | None = None  # why the model has an explainer that cannot explain it

    @property
    def commit(self) -> str | None:
        return self.manifest.commit if self.manifest else None

    def predict(self, x: Any) -> Any:
        return self._predict(x)

    def predict_proba(self, x: Any) -> Any:
        fn = getattr(self._native, "predict_proba", None)
        if fn is None:
            raise ModelUnloadable(f"the {self.flavor} model {self.entry.path} has no predict_proba")
        return fn(x)

    @property
    def has_predict_proba(self) -> bool:
        return callable(getattr(self._native, "predict_proba", None))

    @property
    def classes(self) -> Any:
        """A classifier's labels (``classes_``), or None (a regressor, or a model that does not say)."""
        return getattr(self._native, "classes_", None)

    @property
    def feature_names(self) -> list[str] | None:
        """The column names the model was fitted on (scikit-learn's ``feature_names_in_``), when it has them."""
        names = getattr(self.impl, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    @property
    def n_features(self) -> int | None:
        """How many input columns the model expects, when the model says."""
        n = getattr(self.impl, "n_features_in_", None)
        return n if isinstance(n, int) else None

    def __repr__(self) -> str:
        where = f"{self.manifest.repo}@{self.manifest.commit[:12]}" if self.manifest else "unverified"
        return f"<LoadedModel {self.flavor} {self.entry.path} {where}>"


class Loader(Protocol):
    def __call__(self, entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel: ...


# the package a pickled model's classes come from → the extra that installs it
_EXTRA_OF = {"sklearn": "ml", "scipy": "ml", "numpy": "ml", "pandas": "ml", "joblib": "ml", "onnxruntime": "onnx",
             "mlflow": "mlflow"}


def _missing(e: ImportError, path: str, flavor: str) -> ModelUnloadable:
    """A model whose library is not installed: name the package and the extra that brings it."""
    root = (e.name or "").split(".")[0] or "a package"
    extra = _EXTRA_OF.get(root)
    fix = f"pip install 'tusk[{extra}]'" if extra else f"pip install {root}"
    return ModelUnloadable(f"loading the {flavor} model {path} needs {root!r}, which is not installed: {fix}")


def _require(module: str, flavor: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ModelUnloadable(f"loading a {flavor} model needs {module!r}, which is not installed: "
                              f"pip install 'tusk[{extra}]'") from e


def _pickled(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    try:
        impl = pickle.loads(files[entry.path])  # bytes verified against the manifest first
    except ImportError as e:
        raise _missing(e, entry.path, "pickle") from e
    except Exception as e:
        raise ModelUnloadable(f"{entry.path} is not a loadable pickle: {e}") from e
    return _with_predict(entry, impl, manifest)


def _joblib(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    joblib = _require("joblib", "joblib", "ml")
    data = files[entry.path]
    try:
        impl = joblib_in_place.load(data, entry.path) if isinstance(data, memoryview) else None
        if impl is None:
            impl = joblib.load(reader(data, entry.path))
    except ImportError as e:
        raise _missing(e, entry.path, "joblib") from e
    except Exception as e:
        raise ModelUnloadable(f"{entry.path} is not a loadable joblib file: {e}") from e
    return _with_predict(entry, impl, manifest)


def _with_predict(entry: ModelEntry, impl: Any, manifest: Manifest | None, keep: object = None) -> LoadedModel:
    predict = getattr(impl, "predict", None)
    if not callable(predict):
        raise ModelUnloadable(f"{entry.path} holds a {type(impl).__name__}, which has no predict method")
    return LoadedModel(entry.flavor, impl, entry, manifest, predict, keep)


def _onnx(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    ort = _require("onnxruntime", "onnx", "onnx")
    from tusk.models.onnx_model import OnnxModel

    try:
        session = ort.InferenceSession(bytes(files[entry.path]), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelUnloadable(f"{entry.path} is not a loadable ONNX model: {e}") from e
    model = OnnxModel(session)  # inputs by name, predict, predict_proba where the graph has probabilities
    return LoadedModel("onnx", model, entry, manifest, model.predict)


def _native_file(entry: ModelEntry) -> str:
    """The file a booster model is: the entry itself, or the file its descriptor names (``file: model.json``)."""
    return f"{entry.path.rstrip('/')}/{entry.entry_point}" if entry.entry_point else entry.path


def _xgboost(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    _require("xgboost", "xgboost", "xgboost")
    from tusk.models.boosters import XGBoostModel

    path = _native_file(entry)
    model = XGBoostModel(files[path], path)
    return LoadedModel("xgboost", model, entry, manifest, model.predict)


def _lightgbm(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    _require("lightgbm", "lightgbm", "lightgbm")
    from tusk.models.boosters import LightGBMModel

    path = _native_file(entry)
    model = LightGBMModel(files[path], path)
    return LoadedModel("lightgbm", model, entry, manifest, model.predict)


def _unpack(entry: ModelEntry, files: Mapping[str, FileBytes]) -> tempfile.TemporaryDirectory[str]:
    """Write a directory model's verified files into a private temporary directory."""
    tmp = tempfile.TemporaryDirectory(prefix="tusk-model-")
    base = entry.path.rstrip("/")
    for path in entry.files:
        rel = path[len(base):].lstrip("/") if base else path.lstrip("/")
        dest = Path(tmp.name) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(files[path])
    return tmp


def _relative(message: str, tmp: tempfile.TemporaryDirectory[str]) -> str:
    """A load error's message with the private directory's path left out: it names files as the model has them
    (the message reaches clients, through readiness and 503s, and the server's paths are none of theirs)."""
    return message.replace(tmp.name + "/", "").replace(tmp.name, ".")


def _mlflow(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    pyfunc = _require("mlflow.pyfunc", "mlflow", "mlflow")
    tmp = _unpack(entry, files)
    try:
        impl = pyfunc.load_model(tmp.name)
    except Exception as e:
        tmp.cleanup()
        raise ModelUnloadable(_relative(f"{entry.path} is not a loadable MLflow model: {e}", tmp)) from e
    return LoadedModel("mlflow", impl, entry, manifest, impl.predict, keep=tmp, native=_mlflow_native(impl, tmp))


def _mlflow_native(impl: Any, tmp: tempfile.TemporaryDirectory[str]) -> object:
    """An MLflow model's probabilities, where its native flavor has them: pyfunc has ``predict`` only, so the
    sklearn flavor's estimator (the same verified files) answers ``predict_proba``."""
    flavors = getattr(getattr(impl, "metadata", None), "flavors", None) or {}
    if "sklearn" not in flavors:
        return None
    try:
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(tmp.name)
    except Exception:  # (pyfunc loaded it: predict works; only probabilities are missing, and say so when asked)
        return None
    return estimator


_module_ids = itertools.count()


def _python(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    """``class: module.py:Name`` from tusk-model.yaml: ``Name()``, then ``load(model_dir)`` if it has one."""
    if not entry.entry_point:
        raise ModelUnloadable(f"{entry.path}: the descriptor names no class (`class: module.py:ClassName`)")
    module_file, class_name = entry.entry_point.split(":", 1)
    tmp = _unpack(entry, files)
    if not (Path(tmp.name) / module_file).resolve().is_relative_to(Path(tmp.name).resolve()):
        raise ModelUnloadable(f"{entry.path}: {module_file} is outside the model's directory")
    name = f"tusk_model_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, Path(tmp.name) / module_file)
    if spec is None or spec.loader is None:
        raise ModelUnloadable(f"{entry.path}: cannot import {module_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        cls = getattr(module, class_name)
        impl = cls()
        if callable(getattr(impl, "load", None)):
            impl.load(tmp.name)
    except Exception as e:
        raise ModelUnloadable(_relative(f"{entry.path}: {entry.entry_point} failed to load: {type(e).__name__}: {e}",
                                        tmp)) from e
    finally:
        sys.modules.pop(name, None)
    return _with_predict(entry, impl, manifest, keep=tmp)


LOADERS: dict[str, Loader] = {
    "sklearn": _pickled,
    "pickle": _pickled,
    "joblib": _joblib,
    "onnx": _onnx,
    "mlflow": _mlflow,
    "python": _python,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
}


def load_model(entry: ModelEntry, files: Mapping[str, FileBytes], manifest: Manifest | None) -> LoadedModel:
    loader = LOADERS.get(entry.flavor)
    if loader is None:
        raise ModelUnloadable(
            f"{entry.path} is a {entry.flavor} model; Tusk versions, verifies and promotes it but has no loader "
            f"for it (loaders: {', '.join(sorted(LOADERS))}). Load its files with your framework: "
            "`tusk model export` writes them with their manifest")
    model = loader(entry, files, manifest)
    if entry.explainer is not None and entry.explainer in files:
        _attach_explainer(model, entry.explainer, files[entry.explainer])
    return model


def _attach_explainer(model: LoadedModel, path: str, data: FileBytes) -> None:
    """Prepare the model's (verified) explainer. One that cannot explain the model leaves the model serving
    predictions; explaining then answers why (``explainer_error``)."""
    from tusk.models.explainers import load_explainer

    try:
        model.explainer = load_explainer(path, bytes(data), model)
    except ModelUnloadable as e:
        model.explainer_error = str(e)
    except Exception as e:  # the model's own code ran in preparing it (a transform): its failure is the explainer's
        model.explainer_error = f"{path} cannot explain {model.entry.path}: {type(e).__name__}: {e}"
