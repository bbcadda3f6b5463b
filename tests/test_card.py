"""Cards users trust: the HF licence fields, steps with their parameters, the template the rows really used,
a content warning where hate speech is inside, `datasets` feature types, and a length plot beside the card."""
from __future__ import annotations

import datasets
import polars as pl
import yaml

from tests.conftest import SAMPLES, qa_rows, sft_recipe


def card_of(project, res) -> tuple[dict, str]:
    text = (project.data / res.name / res.version / "README.md").read_text("utf-8")
    return yaml.safe_load(text.split("---")[1]), text


def test_license_other_has_name_and_link_and_a_terms_file(project):
    body = sft_recipe(sources={"daily": {"kind": "nikl_dialogue", "path": str(SAMPLES / "nikl_dialogue")}},
                      steps=[{"template": {}}, {"rename": {"columns": {"output": "completion"}}}])
    project.recipe("talk", body)
    res = project.factory().build("talk")
    meta, _ = card_of(project, res)
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", "nikl-modu-corpus-terms", "LICENSE.md")
    terms = (project.data / "talk" / res.version / "LICENSE.md").read_text("utf-8")
    assert "https://kli.korean.go.kr/corpus/boards/termsInfo.do" in terms and "Redistribution: **not allowed**" in terms
    body["card"] = {"license": "other", "license_name": "my-lab-terms", "license_link": "https://example.org/terms"}
    project.recipe("talk", body)
    meta, _ = card_of(project, project.factory().build("talk"))
    assert (meta["license_name"], meta["license_link"]) == ("my-lab-terms", "https://example.org/terms")


def test_steps_are_listed_with_their_parameters(built):
    project, res = built
    _, text = card_of(project, res)
    assert '| 1 | steps[1].filter | {"length": {"column": "output", "min": 2}} |' in text
    assert '| 4 | splits | {"splits": {"train": 0.8, "test": 0.2}} |' in text


def test_template_section_shows_the_variant_the_rows_used(built, project):
    _, res = built
    _, text = card_of(project, res)
    section = text.split("## Prompt template")[1].split("\n## ")[0]
    assert "`prompt_no_input`, for rows without an input (50 rows)" in section
    assert "### 입력:" not in section  # the input variant was not used by any row
    rows = [{**r, "extra": "추가 입력" if i % 3 == 0 else ""} for i, r in enumerate(qa_rows(30))]
    project.jsonl("qa.jsonl", rows)
    body = sft_recipe()
    body["sources"]["qa"]["options"]["fields"]["input"] = "extra"
    project.recipe("sft", body)
    res = project.factory().build("sft")
    assert res.manifest["template"]["used"] == {"prompt_input": 10, "prompt_no_input": 20}
    section = card_of(project, res)[1].split("## Prompt template")[1]
    assert "`prompt_input`, for rows with an input (10 rows)" in section and "### 입력:\n{input}" in section


def test_hate_speech_sources_carry_a_content_warning_downstream_too(project):
    project.recipe("hate", {
        "sources": {"aihub": {"kind": "aihub_ethics", "path": str(SAMPLES / "aihub_ethics"), "options": {"immoral": True}}},
        "steps": [{"rename": {"columns": {"text": "prompt"}}}], "output": {"format": "prompt"}})
    _, text = card_of(project, project.factory().build("hate"))
    assert "> **Content warning.** Holds offensive Korean text on purpose" in text
    project.recipe("mixed", {"sources": {"h": {"kind": "dataset", "options": {"name": "hate"}}},
                             "steps": [{"select": {"columns": ["prompt"]}}], "output": {"format": "prompt"}})
    _, text = card_of(project, project.factory().build("mixed"))
    assert "> **Content warning.**" in text


def test_columns_are_datasets_feature_types_and_load_with_them(built, project):
    _, res = built
    meta, text = card_of(project, res)
    assert "| prompt | `Value('string')` |" in text
    assert {"name": "prompt", "dtype": "string"} in meta["dataset_info"]["features"]
    assert meta["dataset_info"]["splits"] == [{"name": s, "num_examples": n} for s, n in res.manifest["splits"].items()]
    plain = datasets.load_dataset(str(project.data / "sft" / res.version), cache_dir=str(project.root / "hf-cache"))
    assert plain["train"].features["prompt"] == datasets.Value("string")
    assert plain["train"].num_rows == res.manifest["splits"]["train"]


def test_length_plot_beside_the_card(built, project):
    _, res = built
    png = project.data / "sft" / res.version / "lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert "![Length distributions per split](lengths.png)" in card_of(project, res)[1]
    assert res.manifest["plots"] == ["lengths.png"]


def test_plain_features_are_what_datasets_writes():
    """The card writes plain column types itself (no `datasets` import); they must be datasets' own YAML."""
    import pyarrow as pa
    from datasets import Features

    from datafactory.card import features
    from datafactory.store import hub_arrow_type

    df = pl.DataFrame({"id": ["a"], "n": [1], "f": [1.0], "b": [True], "l": [["x"]], "ln": [[1]],
                       "i32": pl.Series([1], dtype=pl.Int32), "f32": pl.Series([1.0], dtype=pl.Float32)})
    schema = pa.schema([pa.field(f.name, hub_arrow_type(f.type)) for f in df.to_arrow().schema])
    assert features({"train": df}) == Features.from_arrow_schema(schema)._to_yaml_list()
    nested = df.with_columns(pl.struct(a=pl.col("n")).alias("s"))  # not plain: datasets writes it
    assert features({"train": nested})[-1] == {"name": "s", "struct": [{"name": "a", "dtype": "int64"}]}
