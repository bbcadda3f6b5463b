"""Recipe loading and validation: every mistake names the file, the key path and the fix."""
from __future__ import annotations

import pytest

from datafactory.errors import RecipeError
from datafactory.recipe import load_recipe
from tests.conftest import sft_recipe


def load(project, body, name="r", overrides=None):
    return load_recipe(project.recipe(name, body), overrides)


def test_valid_recipe_fills_defaults(project):
    r = load(project, sft_recipe())
    assert [s.name for s in r.steps] == ["normalize", "filter", "template", "rename"]
    canon = r.canonical()
    assert canon["steps"][2]["params"]["template"] == "kullm"
    assert canon["sources"]["qa"]["on_error"] == "fail"


def test_unknown_step_suggests_the_closest(project):
    body = sft_recipe(steps=[{"fliter": {"length": {"column": "output", "min": 1}}}])
    with pytest.raises(RecipeError) as e:
        load(project, body)
    assert "r.yaml: steps[0]: unknown step 'fliter' (did you mean 'filter'?)" in str(e.value)


def test_unknown_param_key_names_its_path(project):
    body = sft_recipe(steps=[{"filter": {"length": {"column": "output", "mni": 1}}}])
    with pytest.raises(RecipeError, match=r"steps\[0\]\.filter\.length\.mni: unknown key \(did you mean 'min'\?\)"):
        load(project, body)


def test_unknown_top_level_key_suggests(project):
    body = sft_recipe()
    body["step"] = body.pop("steps")
    with pytest.raises(RecipeError, match=r"r\.yaml: step: unknown key \(did you mean 'steps'\?\)"):
        load(project, body)


def test_bad_source_kind_and_options(project):
    body = sft_recipe()
    body["sources"]["qa"]["kind"] = "file"
    with pytest.raises(RecipeError, match=r"sources\.qa\.kind: unknown source kind 'file' \(did you mean 'files'\?\)"):
        load(project, body)
    body["sources"]["qa"]["kind"] = "files"
    body["sources"]["qa"]["options"]["formt"] = "json"
    with pytest.raises(RecipeError, match=r"sources\.qa\.options\.formt: unknown key \(did you mean 'format'\?\)"):
        load(project, body)


def test_bad_yaml_names_the_line(project):
    with pytest.raises(RecipeError, match=r"r\.yaml: not valid YAML: line \d+, column \d+"):
        load(project, "name: r\nsources: [a\n")


def test_a_key_written_twice_is_an_error_not_the_last_one_silently(project):
    """PyYAML keeps the last of two equal keys: a source block copied and not renamed replaced the first source
    without a word. Now the line of each is named; a key a merge brought in may still be overridden."""
    body = ("name: r\nsources:\n  qa: {kind: files, path: a.jsonl}\n  qa: {kind: files, path: b.jsonl}\n"
            "steps: [dedup]\noutput: {format: sft}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: not valid YAML: line 4, column 3: the key 'qa' is written twice "
                       r"in one mapping \(first on line 3\)"):
        load(project, body)
    with pytest.raises(RecipeError, match=r"line 3, .*the key 'min' is written twice"):
        load(project, "name: r\nsteps:\n  - filter: {length: {column: output, min: 1, min: 5}}\n")
    r = load(project, "name: r\nsources:\n  qa: &base {kind: files, path: a.jsonl, options: {id: qid}}\n"
                      "  qb:\n    <<: *base\n    path: b.jsonl\nsteps: [dedup]\noutput: {format: text}\n")
    assert (r.sources["qb"].kind, r.sources["qb"].path, r.sources["qa"].path) == ("files", "b.jsonl", "a.jsonl")


def test_missing_output_and_wrong_format(project):
    body = sft_recipe()
    del body["output"]
    with pytest.raises(RecipeError, match="output: required key is missing"):
        load(project, body)
    with pytest.raises(RecipeError, match=r"output\.format"):
        load(project, sft_recipe(output={"format": "chat"}))


def test_name_must_match_file(project):
    with pytest.raises(RecipeError, match="differs from the file name"):
        load_recipe(project.recipe("other", {**sft_recipe(), "name": "r"}))


@pytest.mark.parametrize("splits,msg", [({"train": 0.5, "test": 0.2}, "add up to 0.7"),
                                        ({"train": 10, "test": 5}, "must be a fraction"),
                                        ({"train": 1.5}, "fraction in")])
def test_bad_splits(project, splits, msg):
    with pytest.raises(RecipeError, match=msg):
        load(project, sft_recipe(splits=splits))


def test_step_sources_must_exist(project):
    body = sft_recipe(steps=[{"dedup": {"sources": ["qaa"]}}])
    with pytest.raises(RecipeError, match=r"steps\[0\]\.dedup\.sources: no source named 'qaa' \(did you mean 'qa'\?\)"):
        load(project, body)
    for odd in ([["qa"]], 5, {"qa": 1}):  # not a name nor a list of names: said, not a TypeError
        with pytest.raises(RecipeError, match=r"steps\[0\]\.dedup\.sources: expected a source name or a list of them"):
            load(project, sft_recipe(steps=[{"dedup": {"sources": odd}}]))


def test_bare_step_name_and_source_override(project):
    r = load(project, sft_recipe(steps=["dedup"]), overrides={"qa": "/elsewhere/qa.jsonl"})
    assert r.steps[0].name == "dedup" and r.sources["qa"].path == "/elsewhere/qa.jsonl"
    with pytest.raises(RecipeError, match="--source names a source this recipe does not have"):
        load(project, sft_recipe(), overrides={"nope": "/x"})


def test_bad_sql_expression_fails_at_load(project):
    with pytest.raises(RecipeError, match=r"steps\[0\]\.filter: expr 'lenght\(output\) >' does not parse"):
        load(project, sft_recipe(steps=[{"filter": {"expr": "lenght(output) >"}}]))


@pytest.mark.parametrize("given,canonical", [("UTF8", "utf-8"), ("cp949", "cp949"), ("EUC-KR", "euc-kr"), ("auto", "auto")])
def test_supported_encodings_and_their_spellings(project, given, canonical):
    body = sft_recipe()
    body["sources"]["qa"]["encoding"] = given
    assert load(project, body).sources["qa"].encoding == canonical


@pytest.mark.parametrize("encoding", ["latin1", "utf-32", "ascii", "cp1252"])
def test_other_encodings_are_a_recipe_error(project, encoding):
    """latin1 decodes any bytes: Korean text came out as mojibake or as no rows, without an error. (utf-16 is
    taken only with its byte-order mark, see test_excel_unicode_text_utf16_is_read_by_auto_and_named_otherwise.)"""
    body = sft_recipe()
    body["sources"]["qa"]["encoding"] = encoding
    with pytest.raises(RecipeError, match=rf"sources\.qa\.encoding: encoding '{encoding}' is not supported; use one of "
                                          r"utf-8, cp949, euc-kr, utf-16, auto"):
        load(project, body)


def test_a_recipe_or_profile_saved_as_yml_is_found_and_listed(project):
    """`recipes/r.yml` was "no recipe named 'r'" (only .yaml was looked for); both spellings are common."""
    import yaml

    from datafactory.llm.profiles import load_profile
    from datafactory.recipe import recipe_path

    path = project.recipe("r", sft_recipe())
    yml = path.rename(path.with_suffix(".yml"))
    assert recipe_path(project.recipes, "r") == yml and load_recipe(yml).name == "r"
    with pytest.raises(RecipeError, match=r"no recipe named 's' in .*\(recipes: r\)"):
        recipe_path(project.recipes, "s")
    profiles = project.root / "profiles"
    profiles.mkdir()
    (profiles / "local.yml").write_text(yaml.safe_dump({"roles": {"teacher": {"provider": "replay", "model": "m"}}}), "utf-8")
    assert load_profile("local", profiles).name == "local"
