"""Cards users trust: the HF licence fields, steps with their parameters, the template the rows really used,
a content warning where hate speech is inside, `datasets` feature types, and a length plot beside the card."""
from __future__ import annotations

import io

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
    assert "`prompt_input`" not in section  # the input variant was not used by any row
    assert "```jinja" in section and "### 응답:" in section  # the same rendering as a chat template
    rows = [{**r, "extra": "추가 입력" if i % 3 == 0 else ""} for i, r in enumerate(qa_rows(30))]
    project.jsonl("qa.jsonl", rows)
    body = sft_recipe()
    body["sources"]["qa"]["options"]["fields"]["input"] = "extra"
    project.recipe("sft", body)
    res = project.factory().build("sft")
    assert res.manifest["template"]["used"] == {"prompt_input": 10, "prompt_no_input": 20}
    section = card_of(project, res)[1].split("## Prompt template")[1]
    assert "`prompt_input`, for rows with an input (or earlier turns) (10 rows)" in section and "### 입력:\n{input}" in section


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
    splits = meta["dataset_info"]["splits"]
    assert [(s["name"], s["num_examples"]) for s in splits] == list(res.manifest["splits"].items())
    assert all(s["num_bytes"] > 0 for s in splits)  # without it `datasets` ignores the lines, warning at each load
    from datasets.utils import logging as hf_logging

    said = io.StringIO()
    handler = __import__("logging").StreamHandler(said)
    hf_logging.get_logger().addHandler(handler)
    try:
        plain = datasets.load_dataset(str(project.data / "sft" / res.version), cache_dir=str(project.root / "hf-cache"))
    finally:
        hf_logging.get_logger().removeHandler(handler)
    assert "Ignoring" not in said.getvalue(), said.getvalue()
    assert plain["train"].info.splits["train"].num_examples == res.manifest["splits"]["train"]
    assert plain["train"].features["prompt"] == datasets.Value("string")
    assert plain["train"].num_rows == res.manifest["splits"]["train"]


def test_length_plot_beside_the_card(built, project):
    _, res = built
    png = project.data / "sft" / res.version / "lengths.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert "![Length distributions per split](lengths.png)" in card_of(project, res)[1]
    assert res.manifest["plots"] == ["lengths.png"]


def _pixels(png, colour: str) -> list[tuple[int, int]]:
    """Where ``colour`` (or nearly) is drawn in the image."""
    from PIL import Image

    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    img = Image.open(png).convert("RGB")
    px = img.load()
    return [(x, y) for x in range(img.width) for y in range(img.height)
            if sum(abs(a - b) for a, b in zip(px[x, y], want)) < 30]


def test_length_plot_draws_each_split_where_its_rows_are(tmp_path):
    """Short train prompts and long test prompts: each split's steps peak over its own lengths, in its own colour,
    with a panel per text column of the format; a very long row does not squash the rest into the first bin."""
    from PIL import Image

    from datafactory.card import _COLOURS, Rows, length_histograms, render_length_plot

    body = pl.DataFrame({"prompt": ["가" * 10] * 900 + ["나" * 90] * 100,
                         "completion": ["다" * (20 + i % 30) for i in range(999)] + ["라" * 50_000]})
    rows = Rows(body, pl.Series(["train"] * 900 + ["test"] * 100), ["train", "test"])
    assert render_length_plot({"format": "sft", "name": "demo", "version": "abc"}, rows, tmp_path) == ["lengths.png"]
    png = tmp_path / "lengths.png"
    assert Image.open(png).size == (760, 296)  # two panels: prompt, completion
    train, test = (_pixels(png, c) for c in _COLOURS[:2])
    prompt_panel = lambda pts: [(x, y) for x, y in pts if x < 380 and y > 60]  # noqa: E731 - below the legend
    top_train = min(prompt_panel(train), key=lambda p: p[1])
    top_test = min(prompt_panel(test), key=lambda p: p[1])
    assert top_train[0] < top_test[0] - 150  # train's peak at 10 characters, test's at 90
    assert abs(top_train[1] - top_test[1]) <= 3  # each all in one bin: the same share of its split's rows
    assert any(x > 380 for x, _ in train) and any(x > 380 for x, _ in test)

    edges, shares, tail = length_histograms(rows, "completion")
    assert tail and edges[-1] < 100 and shares["train"][1][-1] > 0  # 50,000 characters in the last bin
    assert [round(sum(s), 6) for _, s in shares.values()] == [1.0, 1.0]
    assert length_histograms(Rows(body.with_columns(pl.lit(None, pl.String).alias("prompt")), None, ["train"]),
                             "prompt") is None
    assert render_length_plot({"format": "sft", "name": "demo", "version": "abc"},
                              Rows(body.head(1), None, ["train"]), tmp_path) == ["lengths.png"]  # one row, one length


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
