"""docs/pipeline-reference.md, generated from the pydantic schemas (the job body, each stage kind's spec, the nested
options) so that it cannot drift: ``python -m client.pipeline_reference > docs/pipeline-reference.md``; a test
compares the committed file with what this prints."""

from __future__ import annotations

import json
import sys

from shared.schemas import JobCreate
from shared.stage_kinds import KINDS

HEADER = """# Pipeline file reference

Generated from the schemas by `python -m client.pipeline_reference > docs/pipeline-reference.md`; do not edit
by hand (tests/shared/test_pipeline_reference.py fails when it is out of date). How the pieces fit:
docs/pipelines.md; the training options explained: docs/training.md.
"""


def _type(schema: dict, defs: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        stage = next((k.type for k in KINDS.values() if k.spec.__name__ == name), None)
        return f"[`{stage}` stage](#stage-{stage})" if stage else f"[{name}](#{name.lower()})"
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " or ".join(dict.fromkeys(_type(s, defs) for s in schema[union] if s.get("type") != "null"))
    if "enum" in schema:
        return " / ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"mapping to {_type(schema['additionalProperties'], defs)}"
    return kind


def _limits(schema: dict) -> str:
    parts = []
    for source in [schema, *schema.get("anyOf", [])]:
        for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                          ("minLength", "length >="), ("maxLength", "length <="), ("pattern", "matches"),
                          ("multipleOf", "multiple of")):
            if key in source:
                value = f"`{source[key]}`" if key == "pattern" else source[key]
                parts.append(f"{word} {value}")
    return ", ".join(dict.fromkeys(parts))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def table(title: str, schema: dict, defs: dict) -> list[str]:
    required = set(schema.get("required", []))
    lines = [f"## {title}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| field | type | default | limits | description |", "|---|---|---|---|---|"]
    for name, field in schema.get("properties", {}).items():
        default = "required" if name in required else json.dumps(field.get("default")) if "default" in field else ""
        lines.append(
            f"| `{name}` | {_cell(_type(field, defs))} | {_cell(default)} | {_cell(_limits(field))} | "
            f"{_cell(field.get('description', ''))} |"
        )
    return [*lines, ""]


def reference() -> str:
    job = JobCreate.model_json_schema(by_alias=True)
    defs = job.get("$defs", {})
    lines = [HEADER, *table("The job (a pipeline file's top level)", job, defs)]
    for stage_type, declared in KINDS.items():
        schema = declared.spec.model_json_schema(by_alias=True)
        defs.update(schema.get("$defs", {}))
        consumes = ", ".join(f"`{field}` ({product})" for field, product in declared.inputs.items()) or "nothing"
        produces = ", ".join(sorted(declared.produces)) or "nothing"
        lines += [f"# Stage `{stage_type}`", "", declared.summary, "", f"Consumes {consumes}; produces {produces}.", ""]
        lines += table(f"`{stage_type}` fields", schema, defs)[2:]
    lines += ["# Nested options", ""]
    for name in sorted(defs):
        if name in {kind.spec.__name__ for kind in KINDS.values()} or "properties" not in defs[name]:
            continue
        lines += table(name, defs[name], defs)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
