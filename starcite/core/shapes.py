"""JSON shapes: one definition of an accepted value gives both its check and its JSON Schema.

Owns: the small vocabulary the request rules are written in (`Text`,
`Either`, `Integer`, `Array`, `Obj`, `Field`), `Shape.accepts` and `check_object` (the
validators) and `Shape.schema` (the OpenAPI 3.0 schema of the same rule).
Keeping both views on one class is what keeps `/openapi.json` exact: a bound
or a required field cannot be enforced without being documented, or the
other way round. Pure: no I/O, no framework, no project imports beyond the
error type.

Must not: know which request a shape belongs to (`starcite.core.rules` and
`starcite.api.auth.tokens` define those), or accept anything its schema refuses.
A JSON `null` counts as absent for an optional field (unless the field says
`null_is_value`: PATCH's title, where null clears it), and its schema says
`nullable`.
"""

import dataclasses
import datetime
import functools
import re

from starcite.core.errors import StarciteError


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utf8_encodable(text: str) -> bool:
    """False for a lone surrogate (JSON's "\\ud800"): not a Unicode character, so no schema pattern
    can describe it and nothing downstream could encode it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _whole_match(alphabet: str):
    """``fullmatch`` of a string made only of ``alphabet`` (compiled once per alphabet, not per check)."""
    return re.compile(f"{alphabet}*").fullmatch


class Shape:
    def accepts(self, value) -> bool:
        raise NotImplementedError

    def schema(self) -> dict:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Text(Shape):
    """A string: `min_length`..`max_length` characters, each matching the regex class `alphabet`,
    not one of `refused`, and one of `choices` when they are given."""

    min_length: int = 0
    max_length: int | None = None
    alphabet: str | None = None
    refused: tuple = ()
    choices: tuple = ()

    def accepts(self, value) -> bool:
        return (isinstance(value, str) and len(value) >= self.min_length
                and (self.max_length is None or len(value) <= self.max_length)
                and (self.alphabet is None or _whole_match(self.alphabet)(value) is not None)
                and (value.isascii() or _utf8_encodable(value))
                and value not in self.refused and (not self.choices or value in self.choices))

    def schema(self) -> dict:
        schema = {"type": "string"}
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.alphabet is not None:
            schema["pattern"] = f"^{self.alphabet}*$"
        if self.refused:
            schema["not"] = {"enum": list(self.refused)}
        return schema


@dataclasses.dataclass(frozen=True)
class Either(Shape):
    """A value that one of `shapes` accepts (``anyOf`` in the schema)."""

    shapes: tuple

    def accepts(self, value) -> bool:
        return any(shape.accepts(value) for shape in self.shapes)

    def schema(self) -> dict:
        return {"anyOf": [shape.schema() for shape in self.shapes]}


@dataclasses.dataclass(frozen=True)
class Integer(Shape):
    """A JSON integer (never a boolean or a float) in `minimum`..`maximum`."""

    minimum: int
    maximum: int

    def accepts(self, value) -> bool:
        return is_int(value) and self.minimum <= value <= self.maximum

    def schema(self) -> dict:
        return {"type": "integer", "format": "int64", "minimum": self.minimum, "maximum": self.maximum}

    def parse(self, text: str):
        """A query-string value as this integer, or None: decimal digits only (no sign but '-', no spaces)."""
        if not re.fullmatch(r"-?[0-9]+", text):
            return None
        try:
            value = int(text)
        except ValueError:  # more digits than Python converts
            return None
        return value if self.accepts(value) else None


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def utc_timestamp(value):
    """An RFC 3339 time with its offset as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (the one form the
    node writes times in, so two of them compare as strings), or None when it is not one."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    text = value.replace("z", "Z").replace("t", "T")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most 6 fraction digits: drop the rest (sub-microsecond)
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.astimezone(datetime.timezone.utc)
    except (ValueError, OverflowError):
        return None
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S.%f}Z"  # %Y is not zero-padded before year 1000


@dataclasses.dataclass(frozen=True)
class Timestamp(Shape):
    """An RFC 3339 date-time with an offset (``Z`` or ``+hh:mm``), e.g. ``2026-12-07T18:00:00Z``."""

    def accepts(self, value) -> bool:
        return utc_timestamp(value) is not None

    def schema(self) -> dict:
        return {"type": "string", "format": "date-time"}


@dataclasses.dataclass(frozen=True)
class Array(Shape):
    """A JSON array of at least `min_items` items, each accepted by `items`."""

    items: Shape
    min_items: int = 0

    def accepts(self, value) -> bool:
        return isinstance(value, list) and len(value) >= self.min_items and all(map(self.items.accepts, value))

    def schema(self) -> dict:
        schema = {"type": "array", "items": self.items.schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        return schema


@dataclasses.dataclass(frozen=True)
class Field:
    """One member of an `Obj`: its shape, whether it is required, and the 400 a violation gets."""

    name: str
    shape: Shape
    message: str
    code: str | None = None  # None: the enclosing object's code
    required: bool = False
    null_is_value: bool = False  # a JSON null is a value (not "absent"): present, and never checked by `shape`


@dataclasses.dataclass(frozen=True)
class Obj(Shape):
    """A JSON object. With `fields`, each is checked (see `check_object`); `closed` refuses other keys;
    `min_properties` refuses smaller objects; `any_of` names fields of which at least one must be present
    (`Field.present`), with `any_of_message` as the refusal."""

    fields: tuple = ()
    closed: bool = False
    code: str = "invalid_request"
    min_properties: int = 0
    any_of: tuple = ()
    any_of_message: str = ""

    def __post_init__(self):  # the field names, once (a closed object's check needs them every time)
        object.__setattr__(self, "names", frozenset(f.name for f in self.fields))

    def accepts(self, value) -> bool:
        return isinstance(value, dict) and len(value) >= self.min_properties

    def schema(self) -> dict:
        schema = {"type": "object"}
        if self.min_properties:
            schema["minProperties"] = self.min_properties
        if self.any_of:
            by_name = {f.name: f for f in self.fields}
            schema["anyOf"] = [{"required": [name]} if by_name[name].null_is_value
                               else {"required": [name], "properties": {name: by_name[name].shape.schema()}}
                               for name in self.any_of]
        if self.fields:
            schema["properties"] = {f.name: {**f.shape.schema(), **({} if f.required else {"nullable": True})}
                                    for f in self.fields}
            required = [f.name for f in self.fields if f.required]
            if required:
                schema["required"] = required
        if self.closed:
            schema["additionalProperties"] = False
        return schema


def present(field: Field, value: dict) -> bool:
    """Whether ``value`` gives ``field``: a non-null member, or a null one where null is a value."""
    return value.get(field.name) is not None or (field.null_is_value and field.name in value)


def check_object(value, shape: Obj, message: str, error=StarciteError, prefix: str = ""):
    """Raise ``error(400, code, message)`` for the first rule of `shape` that `value` breaks."""
    if not isinstance(value, dict):
        raise error(400, shape.code, message)
    if shape.closed:
        unknown = sorted(set(value) - shape.names)
        if unknown:
            raise error(400, shape.code, f"unknown field {prefix + unknown[0]!r}")
    for field in shape.fields:
        item = value.get(field.name)
        code = field.code or shape.code
        if item is None and field.null_is_value:
            continue
        if item is None:
            if field.required:
                raise error(400, code, field.message)
            continue
        if not field.shape.accepts(item):
            raise error(400, code, field.message)
        if isinstance(field.shape, Obj) and field.shape.fields:
            check_object(item, field.shape, field.message, error, f"{prefix}{field.name}.")
    if shape.any_of and not any(present(f, value) for f in shape.fields if f.name in shape.any_of):
        raise error(400, shape.code, shape.any_of_message or message)
