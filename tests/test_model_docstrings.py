"""Field descriptions come from attribute docstrings, read through one parse per module (roost._docstrings)."""

from __future__ import annotations

import pytest
import roost
from pydantic import BaseModel, ConfigDict
from pydantic._internal import _docs_extraction
from roost import _docstrings
from roost.plugins import get_plugins


class Outer(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    size: int = 0
    """How big."""

    class Inner(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        name: str = ""
        """The inner name."""

    label: str = ""
    """A label,
    on two lines."""


class Twice(BaseModel):  # defined twice under one name: the source alone cannot tell which is which
    model_config = ConfigDict(use_attribute_docstrings=True)

    a: int = 0
    """First definition."""


class Twice(BaseModel):  # type: ignore[no-redef]  # noqa: F811
    model_config = ConfigDict(use_attribute_docstrings=True)

    a: int = 0
    """Second definition."""


def _models() -> list[type[BaseModel]]:
    get_plugins().load_types()  # every installed plugin's task modules
    seen: list[type[BaseModel]] = []
    todo = [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def test_same_descriptions_as_pydantic_for_every_model() -> None:
    compared = 0
    for cls in _models():
        if cls.__module__.startswith("pydantic") or not cls.model_config.get("use_attribute_docstrings"):
            continue
        ours = _docstrings._from_module(cls)
        if ours is None:
            continue
        assert ours == _docs_extraction.extract_docstrings_from_cls(cls, use_inspect=True), cls.__qualname__
        compared += 1
    assert compared > 50


def test_nested_and_multiline_docstrings() -> None:
    assert Outer.model_fields["size"].description == "How big."
    assert Outer.model_fields["label"].description == "A label,\non two lines."
    assert Outer.Inner.model_fields["name"].description == "The inner name."


def test_a_name_defined_twice_is_left_to_pydantic() -> None:
    assert _docstrings._from_module(Twice) is None
    assert Twice.model_fields["a"].description == "Second definition."


@pytest.mark.parametrize("name", ["Task", "Flow"])
def test_core_models_keep_their_descriptions(name: str) -> None:
    from roost.flow.model import Flow

    cls = {"Task": roost.Task, "Flow": Flow}[name]
    described = [f for f in cls.model_fields.values() if f.description]
    assert described, name
