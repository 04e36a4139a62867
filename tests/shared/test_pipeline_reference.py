"""docs/pipeline-reference.md is generated from the schemas and must match them: regenerate it with
``python -m client.pipeline_reference > docs/pipeline-reference.md`` after changing a spec."""

from pathlib import Path

from client.pipeline_reference import reference
from shared.stage_kinds import KINDS


def test_the_committed_reference_is_what_the_schemas_give():
    committed = (Path(__file__).resolve().parents[2] / "docs" / "pipeline-reference.md").read_text()
    assert committed == reference(), "docs/pipeline-reference.md is out of date: regenerate it"


def test_every_kind_and_every_field_is_in_it():
    text = reference()
    for stage_type, declared in KINDS.items():
        assert f"# Stage `{stage_type}`" in text
        for name, field in declared.spec.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, (stage_type, name)
