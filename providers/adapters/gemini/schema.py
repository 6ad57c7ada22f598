"""Gemini's function declarations: OpenAI function tools as ``functionDeclarations`` whose
parameters are Gemini's OpenAPI-subset Schema, and tool_choice as ``functionCallingConfig``.

``to_gemini_schema``: upper-case types, local ``$ref`` inlined, ``["x", "null"]`` -> nullable,
``const`` -> enum; keywords the subset lacks, such as additionalProperties, are dropped: the
declaration gets looser, never wrong.
"""

from typing import Any

from providers import errors
from providers.types import Target

SCHEMA_KEYS = ("title", "description", "nullable", "enum", "default", "example", "pattern", "minimum", "maximum",
               "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "required",
               "propertyOrdering")
SCHEMA_FORMATS = {"enum", "date-time", "int32", "int64", "float", "double"}


def declaration(tool: dict[str, Any], target: Target) -> dict[str, Any]:
    function = tool.get("function") or {}
    if not function.get("name"):
        raise errors.ProviderBadRequest("Every tool needs 'function.name'.", provider=target.provider)
    declared: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declared["description"] = function["description"]
    if function.get("parameters"):
        schema = to_gemini_schema(function["parameters"])
        # Gemini refuses an OBJECT without properties; a function without arguments has none.
        if schema.get("type") != "OBJECT" or schema.get("properties"):
            declared["parameters"] = schema
    return declared


def to_gemini_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema as Gemini's OpenAPI-subset Schema (see the module docstring)."""
    if not isinstance(schema, dict) or depth > 40:
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return to_gemini_schema({**defs[ref.rsplit("/", 1)[-1]], **rest}, defs, depth + 1)
    out: dict[str, Any] = {key: schema[key] for key in SCHEMA_KEYS if key in schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) > 1:
            out["anyOf"] = [to_gemini_schema({**schema, "type": k}, defs, depth + 1) for k in kinds]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if schema.get("format") in SCHEMA_FORMATS:
        out["format"] = schema["format"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: to_gemini_schema(sub, defs, depth + 1) for name, sub in schema["properties"].items()}
    if "items" in schema:
        out["items"] = to_gemini_schema(schema["items"], defs, depth + 1)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        out["anyOf"] = [to_gemini_schema(sub, defs, depth + 1) for sub in variants]
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        out = {**to_gemini_schema(schema["allOf"][0], defs, depth + 1), **out}
    return out


def calling_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"mode": "ANY", **({"allowedFunctionNames": [name]} if name else {})}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "AUTO")}
