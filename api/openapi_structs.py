"""The schemas of msgspec Structs (every request and response body) in the OpenAPI
document: Litestar's own, with ``additionalProperties: false`` where a Struct refuses unknown
fields and the constraints of plain fields as msgspec states them
(:class:`StrictStructSchemaPlugin`, in :data:`SCHEMA_PLUGINS`; see ``api.openapi.plugins``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

import msgspec
from litestar.openapi.spec import Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.typing import FieldDefinition

try:  # Litestar's msgspec Struct schemas, extended below (not a public module)
    from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
except ImportError:  # pragma: no cover - a Litestar without it: the plugin is skipped
    StructSchemaPlugin = None  # type: ignore[assignment,misc]

# JSON Schema keywords of msgspec's own schema, as Litestar's Schema attributes.
_KEYWORDS = {
    "type": "type",
    "anyOf": "any_of",
    "items": "items",
    "description": "description",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique_items",
    "enum": "enum",
}
# Types whose msgspec schema says less than Litestar's (formats), or that are components.
_LITESTAR_TYPES = (datetime, date, time, UUID, Decimal, bytes, msgspec.Struct, enum.Enum)


def schema_of(json_schema: Mapping[str, Any]) -> Schema:
    """A Litestar Schema from a JSON Schema without references (msgspec's)."""
    kwargs: dict[str, Any] = {}
    for key, value in json_schema.items():
        attr = _KEYWORDS.get(key)
        if attr == "type":
            many = not isinstance(value, str)
            value = [OpenAPIType(t) for t in value] if many else OpenAPIType(value)
        elif attr == "any_of":
            value = [schema_of(v) for v in value]
        elif attr == "items":
            value = schema_of(value)
        if attr is not None:
            kwargs[attr] = value
    return Schema(**kwargs)


def _plain(annotation: Any) -> bool:
    """Built of str, int, float, bool, None, lists and constraints only."""
    if isinstance(annotation, type) and issubclass(annotation, _LITESTAR_TYPES):
        return False
    return all(_plain(arg) for arg in get_args(annotation) if not isinstance(arg, msgspec.Meta))


def _documented(annotation: Any) -> dict[str, Any]:
    """What a type's ``Meta(extra={"openapi": {...}})`` adds to its documented schema: a
    rule its service checks (with its own message) rather than msgspec."""
    found: dict[str, Any] = {}
    for arg in get_args(annotation):
        if isinstance(arg, msgspec.Meta) and arg.extra:
            found.update(arg.extra.get("openapi", {}))
    return found


if StructSchemaPlugin is not None:

    class StrictStructSchemaPlugin(StructSchemaPlugin):
        """msgspec Structs as Litestar documents them, with two fixes: ``additionalProperties:
        false`` for those that refuse unknown fields (every request body), and the fields
        of plain types (strings, numbers, lists of them, optional or not) as msgspec
        itself states them, constraints included: Litestar drops a bound of 0 on an
        optional field (``ge=0``) and the constraints of list items (a webhook type's
        pattern), and puts an optional field's bounds beside its ``oneOf``."""

        def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Any:
            schema = super().to_openapi_schema(field_definition, schema_creator)
            struct = field_definition.type_
            if not isinstance(schema, Schema) or schema.properties is None:
                return schema
            if struct.__struct_config__.forbid_unknown_fields:
                schema.additional_properties = False
            hints = field_definition.get_type_hints(include_extras=True, resolve_generics=True)
            for field in msgspec.structs.fields(struct):
                annotation = hints.get(field.name)
                old = schema.properties.get(field.encode_name)
                if not isinstance(old, Schema):
                    continue
                if old.one_of and len(old.one_of) == 1:  # ``T | UnsetType``: optional T
                    inner = old.one_of[0]
                    if isinstance(inner, Schema) and inner.description is None:
                        inner.description = old.description
                    schema.properties[field.encode_name] = inner
                if annotation is None or not isinstance(old, Schema) or not _plain(annotation):
                    continue
                js = {**msgspec.json.schema(annotation), **_documented(annotation)}
                new: Schema | Reference = schema_of(js)
                assert isinstance(new, Schema)
                new.default = old.default
                if new.any_of and len(new.any_of) == 1:
                    new = new.any_of[0]
                schema.properties[field.encode_name] = new
            return schema

    SCHEMA_PLUGINS: list[Any] = [StrictStructSchemaPlugin()]
else:  # pragma: no cover
    SCHEMA_PLUGINS = []
