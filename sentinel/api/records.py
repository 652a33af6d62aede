"""Response models that show a domain or store record: one declared mapping, checked at import.

A response model lists its fields (for types, descriptions and the OpenAPI document), but
says which dataclass it shows, which of the record's fields it deliberately leaves out
(``hidden``) and which of its own fields the route computes (``derived``). When the class is
created every record field must be shown or hidden and every response field must come from
the record or be derived, so a field added to a record, or renamed on one side only, fails at
import instead of silently missing the API. ``of_record`` copies the shown fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from pydantic import BaseModel

__all__ = ["RecordView", "ViewMismatch"]


class ViewMismatch(TypeError):  # noqa: N818 - a TypeError named for what it reports
    """Raised when a ``RecordView`` and its record disagree about their fields."""


class RecordView(BaseModel):
    """A response model that shows a dataclass record.

    Subclasses set the class variables:

    Attributes:
        record: The dataclass shown.
        hidden: Record fields the API does not show (secrets, internals).
        derived: Response fields not on the record; ``of_record`` must be given them.
    """

    record: ClassVar[type[Any]]
    hidden: ClassVar[frozenset[str]] = frozenset()
    derived: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        record = cls.__dict__.get("record")
        if record is None:
            return  # an intermediate base; its subclasses are checked
        if not (isinstance(record, type) and dataclasses.is_dataclass(record)):
            raise ViewMismatch(f"{cls.__name__}.record must be a dataclass, but got {record!r}")
        fields = {f.name for f in dataclasses.fields(record)}
        shown = set(cls.model_fields)
        problems = [
            f"{kind}: {sorted(names)}"
            for kind, names in (
                ("record fields neither shown nor hidden", fields - shown - cls.hidden),
                ("response fields neither on the record nor derived", shown - fields - cls.derived),
                ("hidden names that are not record fields", cls.hidden - fields),
                ("hidden fields that are shown", cls.hidden & shown),
                ("derived names that are not response fields", cls.derived - shown),
                ("derived names that are record fields", cls.derived & fields),
            )
            if names
        ]
        if problems:
            raise ViewMismatch(f"{cls.__name__} vs {record.__name__}: " + "; ".join(problems))

    @classmethod
    def of_record(cls, record: Any, **values: Any) -> Self:
        """The response for ``record``: its shown fields, then ``values`` (derived or reshaped).

        Raises:
            ViewMismatch: If ``record`` is not the declared type or a derived field is missing.
        """
        if not isinstance(record, cls.record):
            raise ViewMismatch(
                f"{cls.__name__} shows {cls.record.__name__}, but got {type(record).__name__}"
            )
        missing = cls.derived - values.keys()
        if missing:
            raise ViewMismatch(f"{cls.__name__} needs the derived fields {sorted(missing)}")
        shown = {name: getattr(record, name) for name in cls.model_fields if name not in values}
        return cls.model_validate({**shown, **values})
