"""The public Python API's docstrings: Google-style sections the API pages render.

The docstrings are read statically (griffe, as mkdocstrings reads them), so nothing is imported
and a parameter added without its ``Args:`` line fails here, not only on the site.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[1]

# Functions and methods whose docstrings must carry Args (and Returns when they return).
FUNCTIONS = [
    "predict.forecaster.load_checkpoint",
    "predict.loading.load_forecaster",
    "predict.checkpoint.load_module",
    *(
        f"predict.forecaster.Forecaster.{name}"
        for name in ("predict_steps", "forecast_table", "generated_data")
    ),
    *(
        f"core.ForecastCore.{name}"
        for name in (
            "predict",
            "predict_intervals",
            "calibration_for",
            "intervals_for",
            "forecast_rows",
            "series_index",
            "windows",
            "batches",
            "method",
            "check_input",
            "check_options",
            "check_levels",
        )
    ),
    "core.future_times",
    *(
        f"onnx.OnnxForecaster.{name}"
        for name in ("predict_intervals", "forward", "scaling", "check_levels")
    ),
    "module.ForecastModule.forecast_quantiles",
    "module.ForecastModule.predict_step",
    "data.files.FileDataModule.read",
    "data.files.FileDataModule.to_units",
    "data.files.FileDataModule.state_dict",
    "train.train",
    "backtest.task.backtest",
]
# Classes whose docstring documents ``__init__``'s arguments (merged into the class on the site).
CLASSES = [
    "core.ForecastCore",
    "predict.forecaster.Forecaster",
    "onnx.OnnxForecaster",
    "module.ForecastModule",
    "data.files.FileDataModule",
    "data.sine.SineDataModule",
]


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    return griffe.load("seqforecast", search_paths=[str(ROOT / "src")], resolve_aliases=False)


def sections(obj: griffe.Object) -> dict[str, list]:
    assert obj.docstring is not None, f"{obj.path} has no docstring"
    parsed = obj.docstring.parse("google", warnings=False)
    return {s.kind.value: s.value for s in parsed if s.kind.value != "text"}


def documented_args(found: dict[str, list]) -> list[str]:
    return [p.name.lstrip("*") for p in found.get("parameters", [])]


def signature_args(function: griffe.Function) -> list[str]:
    return [p.name for p in function.parameters if p.name not in ("self", "cls")]


def scores_functions(package: griffe.Module) -> list[str]:
    members = package["scores"].members.values()
    return [
        f"scores.{m.name}"
        for m in members
        if not m.is_alias and m.is_function and not m.name.startswith("_")
    ]


def test_public_functions_document_every_argument_and_result(package) -> None:
    names = FUNCTIONS + scores_functions(package)
    assert "scores.mase" in names
    for name in names:
        function = package[name]
        found = sections(function)
        assert documented_args(found) == signature_args(function), name
        returns = function.returns is not None and str(function.returns) != "None"
        kind = "yields" if str(function.returns).startswith("Iterator") else "returns"
        assert (kind in found) == returns, f"{name}: {kind} section"


def test_public_classes_document_their_constructor(package) -> None:
    for name in CLASSES:
        cls = package[name]
        found = sections(cls)
        assert documented_args(found) == signature_args(cls.members["__init__"]), name


def test_api_pages_name_objects_that_exist(package) -> None:
    """Every ``::: path`` and every name of its ``members:`` list is in the package, so a
    renamed function cannot vanish from the site without a failure."""
    pages = sorted((ROOT / "docs" / "api").rglob("*.md"))
    assert pages
    seen = 0
    for page in pages:
        text = page.read_text()
        for path, options in re.findall(r"^::: (\S+)\n((?:    .*\n)*)", text, re.M):
            assert path.startswith("seqforecast"), (page.name, path)
            obj = package if path == "seqforecast" else package[path.removeprefix("seqforecast.")]
            listed = re.search(r"members: \[(.*)\]", options)
            for member in listed.group(1).split(", ") if listed else []:
                assert member in obj.members, f"{page.name}: {path}.{member} does not exist"
            seen += 1
    assert seen > 30
