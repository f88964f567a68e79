"""Explanations over OIP: ``POST /v2/models/{m}[/versions/{v}]/explain``, and the model ``{m}:explain``.

An explanation is an inference whose outputs are attributions: the request is an OIP inference request (the
same inputs, routing, version pins and errors), and the response has one ``FP64`` output of shape ``[N]`` per
input column of the model, named by the column, in the model's order (``outputs`` in the request picks some).
Its ``parameters`` say what is explained: ``explainer`` (the file), ``method``, ``output`` (``log_odds``,
``decision_function``, ``probability``, ``raw`` or ``value``), ``class`` (a classifier's class) and
``base_value``: for each row, ``base_value`` plus the row's attributions is the explained output.

The answering predictor's model carries the explainer (:mod:`tusk.models.explainers`): loaded, verified and
hot-swapped with it, so an explanation names the model commit that answered, in the headers and the
``model_version``, as an inference does. OIP has no explain call, so over gRPC (and to any OIP client) the
explainer is the model ``{m}:explain``, which no deployment can be named (``:`` is not allowed in a name), as
in KServe's ``:explain`` verb: its metadata, readiness and inference are the explanation's.
"""

from __future__ import annotations

from typing import Any

from tusk.errors import ModelUnloadable, NotFound
from tusk.models.explainers import Explainer
from tusk.serving.live import LiveDeployment, Predictor, Served

__all__ = ["SUFFIX", "deployment_of", "explainer_metadata", "explainer_not_ready", "explainer_of"]

SUFFIX = ":explain"


def deployment_of(model: str) -> tuple[str, bool]:
    """(the deployment, whether its explainer is asked for): ``census:explain`` → ``("census", True)``."""
    if model.endswith(SUFFIX):
        return model[: -len(SUFFIX)], True
    return model, False


def explainer_of(dep: LiveDeployment, predictor: Predictor, served: Served) -> Explainer:
    """The explainer of the model the predictor serves; NotFound when it has none, ModelUnloadable (400) when
    it has one that cannot explain it (the reason: a missing library, another model's columns)."""
    model = served.model
    if model.explainer is not None:
        return model.explainer
    if model.explainer_error is not None:
        raise ModelUnloadable(f"deployment {dep.name}, predictor {predictor.name}: {model.explainer_error}")
    raise NotFound(f"deployment {dep.name} has no explainer: predictor {predictor.name} serves "
                   f"{served.repo}@{served.commit[:12]}:{model.entry.path}, with no explainer.json beside it. "
                   "Write one where the model is trained (tusk.models.explainers.write_explainer)")


def explainer_not_ready(dep: LiveDeployment, predictors: list[Predictor]) -> str | None:
    """Why the explainer cannot answer yet (a predictor without a model, or a model without an explainer)."""
    reasons = []
    for p in predictors:
        served = p.served
        if served is None:
            reasons.append(f"predictor {p.name}: {p.error or 'loading'}")
        elif served.model.explainer is None:
            reasons.append(f"predictor {p.name}: {served.model.explainer_error or 'its model has no explainer'}")
    return "; ".join(reasons) or None


def explainer_metadata(doc: dict[str, Any], predictors: list[Predictor]) -> dict[str, Any]:
    """The model metadata of ``{m}:explain``: the model's inputs, one FP64 output per input column."""
    explainer = next((p.served.model.explainer for p in predictors
                      if p.served is not None and p.served.model.explainer is not None), None)
    out = dict(doc, name=doc["name"] + SUFFIX, platform="tusk-explainer")
    out["outputs"] = [{"name": c, "datatype": "FP64", "shape": [-1]} for c in explainer.columns] if explainer else []
    if explainer is not None:
        out["platform"] = f"tusk-explainer-{explainer.method}"
    return out
