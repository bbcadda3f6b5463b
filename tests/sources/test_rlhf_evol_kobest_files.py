"""rlhf_reward (DeepSpeed-Chat format), evol_instruct (both layouts), kobest (JSONL and TSV) and files."""
from __future__ import annotations

import gzip
import json
import os

import polars as pl
import pytest

from datafactory.errors import SourceError
from datafactory.sources.rlhf_reward import parse_response, parse_turns
from tests.conftest import SAMPLES, read_source


# -- rlhf_reward ------------------------------------------------------------------------------------
def test_rlhf_samples():
    read = read_source("rlhf_reward", SAMPLES / "rlhf_reward")
    df = read.frame
    assert df.height == 26 and dict(df.group_by("origin_split").len().iter_rows()) == {"train": 20, "test": 6}
    raw = pl.concat([pl.read_parquet(f) for f in sorted((SAMPLES / "rlhf_reward").rglob("*.parquet"))])
    multi = df.filter(pl.col("history").list.len() > 0)
    assert multi.height == raw["prompt"].str.count_matches("Human:").gt(1).sum() == 5
    row = df.filter(pl.col("question") == "Yes, it is new.").row(0, named=True)
    assert row["history"] == [{"role": "user", "content": "How do I make my bread rise more?"},
                              {"role": "assistant", "content": "Are you using fresh yeast?"}]
    assert not df["chosen"].str.starts_with("Assistant:").any()


@pytest.mark.parametrize("prompt,turns", [
    ("\n\nHuman: Which cop movies are good?\n\n", [("user", "Which cop movies are good?")]),
    ("\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant:", [("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")]),
    ("\n\n어떤 경찰 영화가 좋은가요?\n\n", [("user", "어떤 경찰 영화가 좋은가요?")]),  # VAIV's translation strips Human:
    (" Human: hi there Assistant:", [("user", "hi there")]),  # DeepSpeed-Chat's base-class convention
])
def test_parse_turns(prompt, turns):
    assert [(t["role"], t["content"]) for t in parse_turns(prompt)] == turns


def test_parse_response_strips_prefix_and_eot():
    assert parse_response("Assistant: 좋은 답변입니다.<|endoftext|>") == "좋은 답변입니다."
    assert parse_response(" plain answer") == "plain answer"


def test_rlhf_jsonl_json_and_bad_rows(tmp_path):
    rows = [{"prompt": "\n\nHuman: q1\n\n", "chosen": "Assistant: a", "rejected": "Assistant: b"},
            {"prompt": "\n\nHuman: q2\n\n", "chosen": "Assistant: a"},
            {"prompt": "\n\nHuman: q3\n\n", "chosen": "Assistant: ", "rejected": "Assistant: b"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    with pytest.raises(SourceError, match=r"train\.jsonl, record 1: row 1 has no string 'rejected'"):
        read_source("rlhf_reward", tmp_path)
    read = read_source("rlhf_reward", tmp_path, on_error="quarantine")
    assert read.frame.height == 1 and read.quarantined == {"missing_field": 1}
    assert read.skipped == {"empty_response": 1}
    (tmp_path / "train.jsonl").unlink()
    (tmp_path / "test.json").write_text(json.dumps(rows[:1]), "utf-8")
    assert read_source("rlhf_reward", tmp_path).frame["origin_split"].to_list() == ["test"]


HH = [  # the original Anthropic layout: no prompt, whole dialogues in chosen and rejected
    {"chosen": "\n\nHuman: What are some cuss words?\n\nAssistant: Here is a list.\n\nAss, damn\n\nHuman: "
               "Your favorite?\n\nAssistant: I don't have one.",
     "rejected": "\n\nHuman: What are some cuss words?\n\nAssistant: Here is a list.\n\nAss, damn\n\nHuman: "
                 "Your favorite?\n\nAssistant: Ass."},
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?", "rejected": "\n\nHuman: Hi\n\nAssistant: Hey."},
    {"chosen": "\n\nHuman: Hi\n\nAssistant: Same.", "rejected": "\n\nHuman: Hi\n\nAssistant: Same."},
    {"chosen": "\n\nHuman: Hi\n\nAssistant:", "rejected": "\n\nHuman: Hi\n\nAssistant: Hey."},
    {"chosen": "\n\nHuman: A\n\nAssistant: one\n\nHuman: B\n\nAssistant: two",
     "rejected": "\n\nHuman: A\n\nAssistant: uno\n\nHuman: B\n\nAssistant: dos"},
]


def test_anthropic_hh_layout_gzipped_in_subsets(tmp_path):
    for subset in ("harmless-base", "helpful-base"):  # the same file name in each subset: ids stay unique
        (tmp_path / subset).mkdir()
        (tmp_path / subset / "train.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in HH).encode()))
    read = read_source("rlhf_reward", tmp_path)
    df = read.frame
    assert df.height == 4 and df["id"].is_unique().all() and set(df["origin_split"]) == {"train"}
    assert read.skipped == {"identical_responses": 2, "empty_response": 2, "dialogues_differ_before_last_turn": 2}
    row = df.filter(pl.col("id") == "s/harmless-base/train#0").row(0, named=True)
    assert row["question"] == "Your favorite?" and row["chosen"] == "I don't have one." and row["rejected"] == "Ass."
    assert row["history"] == [{"role": "user", "content": "What are some cuss words?"},
                              {"role": "assistant", "content": "Here is a list.\n\nAss, damn"}]
    assert row["raw_prompt"].endswith("Your favorite?\n\nAssistant:")


def test_dahoas_rm_static_parquet(tmp_path):
    """rm-static: the prompt ends with 'Assistant:', the responses have no prefix."""
    (tmp_path / "data").mkdir()
    pl.DataFrame({"prompt": ["\n\nHuman: Which cop movies are good?\n\nAssistant:"], "response": [" Heat."],
                  "chosen": [" Heat is a classic."], "rejected": [" I don't know."]}).write_parquet(
        tmp_path / "data" / "test-00000-of-00001-8c7c51afc6d45980.parquet")
    row = read_source("rlhf_reward", tmp_path).frame.row(0, named=True)
    assert (row["question"], row["chosen"], row["rejected"], row["origin_split"]) == (
        "Which cop movies are good?", "Heat is a classic.", "I don't know.", "test")


def test_cut_gzip_is_truncation(tmp_path):
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in HH).encode())
    (tmp_path / "train.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"train\.jsonl\.gz: not a complete gzip file"):
        read_source("rlhf_reward", tmp_path)


# -- evol_instruct -----------------------------------------------------------------------------------
def test_evol_both_layouts():
    df = read_source("evol_instruct", SAMPLES / "evol_instruct").frame
    assert df.height == 22 and (df["input"] == "").all()
    arr = df.filter(pl.col("id").str.contains("evol_instruct.json"))
    assert arr.height == 14 and arr["original_id"].is_null().all()
    assert arr["instruction"][0].startswith("한국의 사계절이")  # the array's "input" is the instruction
    vaiv = df.filter(pl.col("original_id").is_not_null())
    assert vaiv.height == 8 and vaiv["id"][0] == "s/evol_rand_inst_sample.jsonl#30130"


def test_evol_seed_rows_and_bad_rows(tmp_path):
    (tmp_path / "base_instuction.jsonl").write_text(
        json.dumps({"idx": 1, "Skill": "Math", "Difficulty": 1, "Instruction": "1+1?"}) + "\n", "utf-8")
    (tmp_path / "gen.json").write_text(json.dumps([{"input": "질문", "output": ""}, {"input": "질문2"}, {"input": "q", "output": "답"}]), "utf-8")
    read = read_source("evol_instruct", tmp_path, on_error="quarantine")
    assert read.skipped == {"seed_without_answer": 1}
    assert read.quarantined == {"empty_output": 1, "missing_field": 1} and read.frame.height == 1


# -- kobest ----------------------------------------------------------------------------------------
def test_kobest_jsonl_and_tsv_agree():
    df = read_source("kobest", SAMPLES / "kobest").frame
    assert df.height == 28  # COPA and HellaSwag in both layouts (19), BoolQ, SentiNeg and WiC from the Hub (3 each)
    others = df.filter(pl.col("task").is_in(["boolq", "sentineg", "wic"]))
    assert others.group_by("task").len().sort("task")["len"].to_list() == [3, 3, 3]
    assert others.filter(pl.col("task") == "wic")["context_2"].null_count() == 0
    assert others.filter(pl.col("task") == "boolq")["paragraph"].null_count() == 0
    copa = df.filter(pl.col("task") == "copa")
    hub = copa.filter(pl.col("id").str.contains("hub/copa/validation"))
    tsv = copa.filter(pl.col("id").str.contains("COPA/dev.tsv"))
    cols = ["premise", "question", "alternative_1", "alternative_2", "label", "kobest_split"]
    assert hub.select(cols).equals(tsv.select(cols))  # Answer 1/2 became 0/1; dev became validation
    assert set(copa["label"]) == {0, 1} and set(copa["question"]) == {"원인", "결과"}
    hella = df.filter(pl.col("task") == "hellaswag")
    h_hub = hella.filter(pl.col("id").str.contains("hub/hellaswag/validation"))
    h_tsv = hella.filter(pl.col("id").str.contains("HellaSwag/dev.tsv"))
    hcols = ["context", "ending_1", "ending_2", "ending_3", "ending_4", "label"]
    assert h_hub.select(hcols).equals(h_tsv.select(hcols)) and hella["label"].is_between(0, 3).all()


def test_kobest_bad_input(tmp_path):
    d = tmp_path / "COPA"
    d.mkdir()
    (d / "dev.tsv").write_text("", "utf-8")  # VAIV's copy once held 0-byte TSVs
    assert read_source("kobest", tmp_path, on_error="quarantine").quarantined == {"empty_file": 1}
    (d / "dev.tsv").write_text("sentence\tquestion\t1\t2\tAnswer\n가\t원인\t나\t다\t3\n가\t원인\t\t다\t1\n", "utf-8")
    read = read_source("kobest", tmp_path, on_error="quarantine")
    assert read.quarantined == {"label_out_of_range": 1, "missing_field": 1}
    (tmp_path / "mystery.jsonl").write_text(json.dumps({"a": 1}) + "\n", "utf-8")
    with pytest.raises(SourceError, match="cannot tell the KoBEST task by path or columns"):
        read_source("kobest", tmp_path / "mystery.jsonl")
    assert read_source("kobest", tmp_path / "mystery.jsonl", task="copa", on_error="quarantine").quarantined == {"missing_field": 1}


# -- files ------------------------------------------------------------------------------------------
def test_files_csv_parquet_and_mapping(tmp_path):
    pl.DataFrame({"q": ["가", "나"], "a": ["1", "2"], "id": ["x", "y"]}).write_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_bytes("q,a\n다,3\n".encode("cp949"))
    with pytest.raises(SourceError, match=r"t\.csv: not valid utf-8"):
        read_source("files", tmp_path)
    df = read_source("files", tmp_path, encoding="auto", fields={"instruction": "q", "output": "a"}).frame
    assert df.sort("instruction")["instruction"].to_list() == ["가", "나", "다"]
    assert set(df.columns) == {"id", "source", "instruction", "output"}
    keyed = read_source("files", tmp_path / "t.parquet", id="id").frame
    assert keyed["id"].to_list() == ["s/x", "s/y"] and "record_id" in keyed.columns


def test_files_reads_tsv_in_a_folder_and_gzipped(tmp_path):
    """A folder of TSV files (KoBEST's original release is TSV) is read like CSV with tabs; it was left out of the
    folder's patterns."""
    import gzip

    (tmp_path / "a.tsv").write_text("q\ta\n가\t1,2\n", "utf-8")
    (tmp_path / "b.tsv.gz").write_bytes(gzip.compress("q\ta\n나\t3\n".encode("utf-8")))
    df = read_source("files", tmp_path, fields={"instruction": "q", "output": "a"}).frame
    assert df["instruction"].to_list() == ["가", "나"] and df["output"].to_list() == ["1,2", "3"]


def test_tsv_with_quotes_as_korean_corpora_write_them(tmp_path):
    """NSMC-style TSV: a review that starts with a quote closing mid-field ('"반지의 제왕"보다 재밌다') stopped the
    quoted (Excel) reading with 'could not parse'; such a file is read as TSV has it, every value as written. A TSV
    Excel wrote (a field in quotes, its quotes doubled) is still read the Excel way, and CSV stays strict."""
    (tmp_path / "nsmc.tsv").write_text('id\tdocument\tlabel\n1\t"반지의 제왕"보다 재밌다\t1\n2\t그는 "싫어"라고 했다\t0\n'
                                       '3\t"완전히 인용된 문장"\t1\n', "utf-8")
    df = read_source("files", tmp_path, fields={"instruction": "document", "label": "label"}).frame
    assert df["instruction"].to_list() == ['"반지의 제왕"보다 재밌다', '그는 "싫어"라고 했다', '"완전히 인용된 문장"']
    # a review that opens a quote it never closes: the quoted reading took the rows after it as its text
    (tmp_path / "nsmc.tsv").write_text('id\tdocument\tlabel\n1\t"좋아요 정말\t1\n2\t보통\t0\n3\t별로"\t0\n', "utf-8")
    df = read_source("files", tmp_path).frame
    assert df["document"].to_list() == ['"좋아요 정말', "보통", '별로"'] and df["label"].to_list() == ["1", "0", "0"]
    # Excel's TSV: quoted fields holding a tab, a newline or doubled quotes
    (tmp_path / "nsmc.tsv").write_text('id\tdocument\n1\t"탭\t있는 ""인용"" 문장"\n2\t"첫 줄\n둘째 줄"\n3\t평범한 문장\n',
                                       "utf-8")
    assert read_source("files", tmp_path).frame["document"].to_list() == ['탭\t있는 "인용" 문장', "첫 줄\n둘째 줄",
                                                                         "평범한 문장"]
    (tmp_path / "nsmc.tsv").unlink()
    (tmp_path / "c.csv").write_text('id,document\n1,"반지의 제왕"보다 재밌다\n', "utf-8")
    with pytest.raises(SourceError, match="c.csv: cannot read as csv"):
        read_source("files", tmp_path)


def test_files_json_key_and_duplicate_ids(tmp_path):
    (tmp_path / "w.json").write_text(json.dumps({"data": [{"k": 1}, {"k": 1}]}), "utf-8")
    with pytest.raises(SourceError, match="no top-level key 'rows'"):
        read_source("files", tmp_path, json_key="rows")
    with pytest.raises(SourceError, match="record key '1' occurs 2 times"):
        read_source("files", tmp_path, json_key="data", id="k")


def test_files_field_of_mixed_kinds_is_named(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"q": "가", "meta": {"a": 1}}\n{"q": "나", "meta": "x"}\n', "utf-8")
    with pytest.raises(SourceError, match="field 'meta' holds an object in record m.jsonl#0 and text in record "
                                          "m.jsonl#1, which one column cannot hold"):
        read_source("files", tmp_path)
    assert read_source("files", tmp_path, fields={"instruction": "q"}).frame["instruction"].to_list() == ["가", "나"]
    # under on_error: quarantine the records whose value is not of the field's usual kind are set aside, named
    rows = [{"q": f"질문{i}", "a": "답"} for i in range(6)]
    rows[2]["a"], rows[4]["a"] = {"text": "x"}, ["y"]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    with pytest.raises(SourceError, match="or set `on_error: quarantine` on the source to set aside the records"):
        read_source("files", tmp_path)
    read = read_source("files", tmp_path, on_error="quarantine")
    assert read.frame["id"].to_list() == ["s/m.jsonl#0", "s/m.jsonl#1", "s/m.jsonl#3", "s/m.jsonl#5"]
    assert read.frame["a"].to_list() == ["답"] * 4 and read.quarantined == {"wrong_type": 2}
    assert [(q["record"], q["detail"]) for q in read.quarantine] == [
        ("m.jsonl#2", "field 'a' holds an object, where 4 other records hold text"),
        ("m.jsonl#4", "field 'a' holds a list, where 4 other records hold text")]
    # objects most of the time, text once: the text is the odd one
    rows = [{"q": "가", "a": {"t": 1}}, {"q": "나", "a": "x"}, {"q": "다", "a": {"t": 2}}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    read = read_source("files", tmp_path, on_error="quarantine")
    assert read.frame["a"].to_list() == [{"t": 1}, {"t": 2}] and read.quarantine[0]["record"] == "m.jsonl#1"
    # a number past 64 bits beside text: the field and both records are named (it said field '?')
    (tmp_path / "m.jsonl").write_text('{"q": "가", "n": "x"}\n{"q": "나", "n": 1000000000000000000000000000000}\n', "utf-8")
    with pytest.raises(SourceError, match="field 'n' holds text in record m.jsonl#0 and the int 1000000000000000000000000"):
        read_source("files", tmp_path)


def test_files_field_of_mixed_kinds_across_files_is_named_not_made_text(monkeypatch, tmp_path):
    """An object in one file and text in the next, or in two units of work: put together, polars made the object
    text ("{1}") without a word; now it is the error the same two records in one file give."""
    import datafactory.sources.base as base

    (tmp_path / "a.jsonl").write_text('{"q": "가", "meta": "x"}\n', "utf-8")
    (tmp_path / "b.jsonl").write_text('{"q": "나", "meta": {"z": 1}}\n{"q": "다"}\n', "utf-8")
    for chunk in (10, 1):  # the two files in one unit of work, then in two
        monkeypatch.setattr(base, "CHUNK_FILES", chunk)
        with pytest.raises(SourceError, match="field 'meta' holds text in record a.jsonl#0 and an object in record "
                                              "b.jsonl#0, which one column cannot hold"):
            read_source("files", tmp_path)
    (tmp_path / "a.jsonl").write_text('{"q": "가", "meta": {"y": 2}}\n{"q": "라", "meta": null}\n', "utf-8")
    both = read_source("files", tmp_path).frame  # objects in both (other keys, nulls): one column
    assert both["meta"].to_list() == [{"y": 2, "z": None}, None, {"y": None, "z": 1}, None]
    (tmp_path / "0.jsonl").write_text('{"q": "마", "meta": null}\n', "utf-8")  # nulls only, first: no kind
    (tmp_path / "c.jsonl").write_text('{"q": "바", "meta": "x"}\n', "utf-8")
    with pytest.raises(SourceError, match="field 'meta' holds an object in record a.jsonl#0 and text in record c.jsonl#0"):
        read_source("files", tmp_path)


def test_folder_listings_match_the_rglob_order_flat_nested_and_with_zips(tmp_path):
    """A folder of files comes back as columns (made into InputFiles on first use), in the order of
    sorted(Path.rglob) by path parts, hidden files left out; a nested folder with a zip goes the general way."""
    import zipfile

    from datafactory.sources.inputs import Listing, resolve_inputs

    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ["b.json", "a-2.json", "a.json", ".hidden.json", "a_1.json"]:
        (flat / name).write_text("{}", "utf-8")
    (flat / "b.json").write_text("{ }", "utf-8")
    os.utime(flat / "b.json", ns=(10**18, 10**18))
    got = resolve_inputs(flat, ["*.json"])
    assert isinstance(got, Listing) and [f.name for f in got] == ["a-2.json", "a.json", "a_1.json", "b.json"]
    assert got[1].path == str(flat / "a.json") and got[1].size == 2 and got[1].member is None
    assert (got.sizes[3], got.mtimes[3]) == (3, 10**18)  # statted by name in the open folder
    with pytest.MonkeyPatch.context() as m:  # where stat takes no folder (Windows): by path, the same
        m.setattr(os, "supports_dir_fd", set())
        again = resolve_inputs(flat, ["*.json"])
        assert (again.paths, again.sizes, again.mtimes) == (got.paths, got.sizes, got.mtimes)
    assert [f.name for f in got.files[:2]] == ["a-2.json", "a.json"] and len(got) == 4
    import pickle  # a slice (a worker's chunk) is columns again, and travels as columns

    part = got[1:3]
    assert isinstance(part, Listing) and part._files is None and list(part) == got.files[1:3]
    back = pickle.loads(pickle.dumps(part))
    assert isinstance(back, Listing) and list(back) == got.files[1:3] and [f.size for f in back] == [2, 2]

    nested = tmp_path / "nested"
    (nested / "x").mkdir(parents=True)
    (nested / "x-y").mkdir()
    for rel in ["x/2.json", "x/1.json", "x-y/0.json", "top.json", "notes.txt", "x/.hidden.json"]:
        (nested / rel).write_text("{}", "utf-8")
    with zipfile.ZipFile(nested / "x" / "pack.zip", "w") as zf:
        zf.writestr("in/z.json", "{}")
    got = resolve_inputs(nested, ["*.json"])
    # "/" sorts before "-": x/... before x-y/...
    assert [f.name for f in got] == ["top.json", "x/1.json", "x/2.json", "x/pack.zip!in/z.json", "x-y/0.json"]
    expect = sorted(p.relative_to(nested).as_posix() for p in nested.rglob("*.json") if not p.name.startswith("."))
    assert [f.name for f in got if "!" not in f.name] == sorted(expect, key=lambda r: r.split("/"))


def test_listings_follow_linked_folders_once_and_skip_hidden_and_macos_folders(tmp_path):
    """Releases linked into one folder are listed (a linked folder was left out without a word); a link back up
    is no loop, a link beside its target lists the files under the target's name; hidden folders (Jupyter's
    checkpoint copies) and macOS's `__MACOSX`, in folders and in zips, are not read."""
    import zipfile

    from datafactory.sources.inputs import resolve_inputs

    elsewhere = tmp_path / "mnt" / "NIKL_DIALOGUE_2021_v1.0"
    elsewhere.mkdir(parents=True)
    (elsewhere / "SDRW2100000001.json").write_text("{}", "utf-8")
    corp = tmp_path / "corp"
    (corp / "2024").mkdir(parents=True)
    (corp / "2024" / "SDRW2400000001.json").write_text("{}", "utf-8")
    (corp / "2021").symlink_to(elsewhere, target_is_directory=True)
    (corp / "latest").symlink_to(corp / "2024", target_is_directory=True)  # beside its target
    (corp / "2024" / "up").symlink_to(corp, target_is_directory=True)  # back up: no loop
    (corp / "gone").symlink_to(tmp_path / "nothing")  # a broken link is not a file
    for hidden in [".ipynb_checkpoints", "__MACOSX"]:
        (corp / "2024" / hidden).mkdir()
        (corp / "2024" / hidden / "SDRW2400000001-checkpoint.json").write_text("{}", "utf-8")
    with zipfile.ZipFile(corp / "2022.zip", "w") as zf:
        for member in ["2022/SDRW2200000001.json", "__MACOSX/2022/._SDRW2200000001.json",
                       "2022/.ipynb_checkpoints/SDRW2200000001-checkpoint.json", "2022/.SDRW2200000002.json"]:
            zf.writestr(member, "{}")
    got = [f.name for f in resolve_inputs(corp, ["SDRW*.json"])]
    assert got == ["2021/SDRW2100000001.json", "2022.zip!2022/SDRW2200000001.json", "2024/SDRW2400000001.json"]
    assert [f.name for f in resolve_inputs(corp / "2021", ["SDRW*.json"])] == ["SDRW2100000001.json"]


def test_a_release_both_unpacked_and_zipped_is_named_in_the_repeated_key_error(tmp_path):
    import shutil
    import zipfile

    release = SAMPLES / "nikl_dialogue" / "NIKL_DIALOGUE_2024_v1.0"
    shutil.copytree(release, tmp_path / release.name)
    with zipfile.ZipFile(tmp_path / f"{release.name}.zip", "w") as zf:
        for f in sorted(release.iterdir()):
            zf.write(f, f"{release.name}/{f.name}")
    with pytest.raises(SourceError, match=r"occurs 2 times; the inputs hold two files named SDRW2400000101.json "
                       r"\(NIKL_DIALOGUE_2024_v1.0/SDRW2400000101.json and NIKL_DIALOGUE_2024_v1.0.zip!"
                       r"NIKL_DIALOGUE_2024_v1.0/SDRW2400000101.json\): is a release there twice"):
        read_source("nikl_dialogue", tmp_path)
    (tmp_path / f"{release.name}.zip").unlink()
    assert read_source("nikl_dialogue", tmp_path).frame.height > 0


def test_a_file_is_read_whole_whatever_its_listed_size(tmp_path):
    """Files are read with the size from the listing as a hint only: one that grew or shrank since, or is empty,
    comes back as it is on disk."""
    from datafactory.sources.inputs import resolve_inputs

    for name, data in [("grew.json", b"[1]"), ("shrank.json", b"[1, 2, 3]"), ("empty.json", b""), ("big.json", b"7" * 3_000_000)]:
        (tmp_path / name).write_bytes(data)
    files = {f.name: f for f in resolve_inputs(tmp_path, ["*.json"])}
    (tmp_path / "grew.json").write_bytes(b"[1, 2, 3, 4, 5]" * 100_000)
    (tmp_path / "shrank.json").write_bytes(b"[]")
    assert files["grew.json"].size == 3 and files["grew.json"].read_bytes() == b"[1, 2, 3, 4, 5]" * 100_000
    assert files["shrank.json"].read_bytes() == b"[]"
    assert files["empty.json"].read_bytes() == b""
    assert files["big.json"].read_bytes() == b"7" * 3_000_000


@pytest.mark.parametrize("patterns", [["*.json"], ["SDRW*.json"], ["ab*ba"], ["*.json", "*.jsonl"], ["x?.json"],
                                      ["talksets-train-*.json", "*.txt"], ["SDRW*.json", "MDRW*.json", "MMRW*.json"],
                                      ["SDRW*.json", "ab*.json"], ["a*.json", "t*.txt"]])
def test_name_patterns_match_as_fnmatch_does(patterns):
    import fnmatch

    from datafactory.sources.inputs import _pattern

    names = ["a.json", "SDRW1.json", "SDRW.json", "sdrw1.json", "aba", "abba", "ab-x-ba", "x1.json", "x12.json",
             "f.jsonl", "talksets-train-1.json", "t.txt", ".json", "json", "MDRW2.json", "MMRW.json", "MDRW.jso",
             "SDR.json", "ab.json"]
    pat = _pattern(tuple(patterns))
    expect = [any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names]
    assert [pat.match(n) for n in names] == expect and pat.match_all(names) == expect


def test_files_are_cut_into_units_of_work_by_count_and_by_bytes(monkeypatch):
    from datafactory.sources import base
    from datafactory.sources.inputs import InputFile

    monkeypatch.setattr(base, "CHUNK_FILES", 4)
    monkeypatch.setattr(base, "CHUNK_BYTES", 100)
    files = [InputFile(f"{i}.json", f"/x/{i}.json", size=s) for i, s in enumerate([10] * 9 + [500, 60, 60, 30, 10, 200])]
    chunks = base._chunks(files)
    assert [[f.size for f in c] for c in chunks] == [[10] * 4, [10] * 4, [10], [500], [60], [60, 30, 10], [200]]
    assert [f for c in chunks for f in c] == files and base._chunks([]) == []


def test_json_lines_in_a_file_named_json_are_read_as_json_lines(tmp_path):
    """Many datasets on the Hub ship JSON Lines as `.json`: it was "invalid JSON at line 2 (Extra data); the file may
    be truncated". Read as JSON Lines when the format comes from the name; with `format: json` (or two values on
    one line) it stays an error, one that says what the file is."""
    (tmp_path / "lines.json").write_text('{"q": "안녕", "a": "반가워"}\n  {"q": "뭐해", "a": "밥"}\n\n', "utf-8")
    got = read_source("files", tmp_path / "lines.json", fields={"instruction": "q", "output": "a"})
    assert got.frame["instruction"].to_list() == ["안녕", "뭐해"]
    assert got.frame["id"].to_list() == ["s/lines.json#0", "s/lines.json#1"]
    with pytest.raises(SourceError, match=r"a second JSON value starts on line 2: the file is JSON Lines .*set "
                                          r"`options.format: jsonl`"):
        read_source("files", tmp_path / "lines.json", format="json")
    (tmp_path / "one_line.json").write_text('{"q": "a"} {"q": "b"}\n', "utf-8")
    with pytest.raises(SourceError, match=r"invalid JSON at line 1 column 12 \(Extra data\)"):
        read_source("files", tmp_path / "one_line.json")
    with pytest.raises(SourceError, match="a nikl_dialogue file is one JSON document"):
        read_source("nikl_dialogue", tmp_path / "lines.json")


def test_excel_unicode_text_utf16_is_read_by_auto_and_named_otherwise(tmp_path):
    """Excel's "Unicode Text" (and "CSV UTF-16") is UTF-16 with a byte-order mark, tab-separated: `auto` said
    "neither UTF-8 nor cp949", and `utf-16` was no encoding a recipe could name."""
    path = tmp_path / "export.tsv"
    path.write_bytes("\ufeff번호\t질문\t답변\r\n1\t안녕\t반가워\r\n2\t뭐해\t밥\r\n".encode("utf-16-le"))
    for encoding in ("auto", "utf-16"):
        got = read_source("files", path, encoding=encoding, id="번호", fields={"instruction": "질문", "output": "답변"})
        assert got.frame["instruction"].to_list() == ["안녕", "뭐해"] and got.frame["id"].to_list() == ["s/1", "s/2"]
    for encoding in ("utf-8", "cp949"):
        with pytest.raises(SourceError, match=r"export\.tsv: not valid .* at byte 0; set `encoding: utf-16` \(or `auto`\)"):
            read_source("files", path, encoding=encoding)
    from datafactory.recipe import check_encoding

    assert check_encoding("UTF16") == "utf-16"
    (tmp_path / "plain.tsv").write_text("질문\t답변\n안녕\t반가워\n", "utf-8")  # UTF-16 would decode it to mojibake
    with pytest.raises(SourceError, match="plain.tsv: no UTF-16 byte-order mark at the start"):
        read_source("files", tmp_path / "plain.tsv", encoding="utf-16")


def test_blank_csv_and_tsv_rows_are_skipped_and_counted_not_errors(tmp_path):
    """A blank line, or a row of empty cells (Excel keeps rows that were ever formatted: `,,`), was a record of
    nulls: a missing-field error under `on_error: fail` (a KoBEST TSV ending in blank lines failed the build)."""
    import shutil

    copa = tmp_path / "KoBEST_datarepo" / "v1.0" / "COPA"
    copa.mkdir(parents=True)
    tsv = (SAMPLES / "kobest" / "KoBEST_datarepo" / "v1.0" / "COPA" / "dev.tsv").read_text("utf-8")
    (copa / "dev.tsv").write_text(tsv.rstrip("\n") + "\n\n\t\t\t\t\n \t\t\t\t\n", "utf-8")
    got = read_source("kobest", tmp_path)
    shutil.rmtree(tmp_path / "KoBEST_datarepo")
    plain = read_source("kobest", SAMPLES / "kobest" / "KoBEST_datarepo" / "v1.0" / "COPA")
    assert got.frame.height == plain.frame.height and got.skipped == {"empty_row": 3}
    (tmp_path / "excel.csv").write_text("질문,답변\r\n안녕,반가워\r\n,\r\n\r\n뭐해,밥\r\n , \r\n", "utf-8")
    got = read_source("files", tmp_path / "excel.csv", fields={"instruction": "질문", "output": "답변"})
    assert got.frame["instruction"].to_list() == ["안녕", "뭐해"] and got.skipped == {"empty_row": 3}
    assert got.frame["id"].to_list() == ["s/excel.csv#0", "s/excel.csv#3"]  # keys keep the rows' positions
    (tmp_path / "excel.csv").write_text("질문,답변\r\n안녕,반가워\r\n\"뭐, 해\",밥,\r\n", "utf-8")  # a stray comma
    with pytest.raises(SourceError, match=r"excel\.csv: cannot read as csv: line 3 has 3 fields, the header 2"):
        read_source("files", tmp_path / "excel.csv")


def test_extensions_match_in_any_case(tmp_path):
    """Files from Windows are often `DATA.CSV` or `대화.JSON`: a folder of them was read without those files, and
    without a word. A pattern's end (the extension) matches in any case; its start (NIKL's `SDRW`) as written."""
    import zipfile

    from datafactory.sources.inputs import _pattern, resolve_inputs

    (tmp_path / "A.CSV").write_text("q,a\n안녕,반가워\n", "utf-8")
    (tmp_path / "b.csv").write_text("q,a\n뭐해,밥\n", "utf-8")
    (tmp_path / "대화.JSON").write_text('[{"q": "잘 자", "a": "응"}]', "utf-8")
    with zipfile.ZipFile(tmp_path / "more.ZIP", "w") as zf:
        zf.writestr("C.JSONL", '{"q": "또", "a": "봐"}\n')
    got = read_source("files", tmp_path, fields={"instruction": "q", "output": "a"})
    assert sorted(got.frame["instruction"].to_list()) == sorted(["안녕", "뭐해", "잘 자", "또"])
    assert [f.name for f in resolve_inputs(tmp_path, ["*.zip"])] == ["more.ZIP"]
    nikl = _pattern(("SDRW*.json", "MDRW*.json"))
    assert nikl.match_all(["SDRW1.JSON", "sdrw1.json", "MDRW2.Json", "SDRW1.jsonl"]) == [True, False, True, False]
    assert _pattern(("x?.json",)).match("X1.JSON")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's open files in /proc")
def test_a_folder_of_many_zips_keeps_few_open(tmp_path):
    """A release split into hundreds of zips: every archive read stayed open, and past the process's file handles
    (256 by default on macOS) the build failed with 'Too many open files'. A few are kept open, the least recently
    read closed first; every record is still read, and a zip's members one after another keep it open."""
    import zipfile

    from datafactory.sources.inputs import _Archive

    (tmp_path / "warm").mkdir()  # a first read: polars' own handles (its threads) are not the zips'
    (tmp_path / "warm" / "w.jsonl").write_text('{"q": "가"}\n', "utf-8")
    read_source("files", tmp_path / "warm")
    (tmp_path / "warm" / "w.jsonl").unlink()
    (tmp_path / "warm").rmdir()
    for i in range(3 * _Archive.KEEP_OPEN):
        with zipfile.ZipFile(tmp_path / f"part{i:03d}.zip", "w") as z:
            for j in range(3):
                z.writestr(f"d{j}.jsonl", json.dumps({"q": f"질문 {i}.{j}"}, ensure_ascii=False) + "\n")
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = fds()
    read = read_source("files", tmp_path)
    assert read.frame.height == 9 * _Archive.KEEP_OPEN and read.frame["q"][-1] == f"질문 {3 * _Archive.KEEP_OPEN - 1}.2"
    assert fds() - before <= _Archive.KEEP_OPEN


def test_jsonl_records_holding_line_separators_are_one_record_each(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 raw inside a string (`json.dumps(..., ensure_ascii=False)` writes them
    so; scraped text has them): `str.splitlines` cut such a record in two and both halves were invalid JSON. Lines
    break at \\n, \\r\\n or \\r only; a record's key is still its line's index."""
    rows = [{"q": "첫 줄\u2028둘째 줄", "a": "답"}, {"q": "다음", "a": "x\x85y\u2029z"}]
    (tmp_path / "d.jsonl").write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n\r\n"
                                      + json.dumps({"q": "셋", "a": "c"}, ensure_ascii=False) + "\n", "utf-8")
    read = read_source("files", tmp_path)
    assert read.frame["q"].to_list() == ["첫 줄\u2028둘째 줄", "다음", "셋"]
    assert read.frame["a"][1] == "x\x85y\u2029z" and read.frame["id"].to_list() == ["s/d.jsonl#0", "s/d.jsonl#1", "s/d.jsonl#3"]


_JSONL_VARIANTS = {  # name: (lines of the file, taken by the fast path)
    "plain": ([{"q": "질문 1", "a": "답 1", "id": "x1"}, {"q": "질문 2", "a": "답 2", "id": "x2"}], True),
    "int ids, compact, crlf, BOM, no last newline": ("\ufeff" + '{"q":"가","a":"나","id":7}\r\n{"q":"다","a":"라","id":-8}', True),
    "escapes and separators inside values": ([{"q": "줄\n바꿈 \"따옴\" \\ 탭\t", "a": "x\u2028y\x85z 😀", "id": "e"},
                                              {"q": "\u0000", "a": "{\"q\": 1}", "id": "f"}], True),
    "unmapped fields of any kind": ([{"q": "가", "a": "나", "id": "u1", "meta": {"k": [1]}},
                                     {"q": "다", "a": "라", "id": "u2", "meta": "text"}], True),
    "trailing blank lines": ('{"q": "가", "a": "나", "id": "t"}\n\n  \n', True),
    "blank line inside": ('{"q": "가", "a": "나", "id": "b1"}\n\n{"q": "다", "a": "라", "id": "b2"}\n', False),
    "field missing": ([{"q": "가", "a": "나", "id": "m1"}, {"q": "다", "id": "m2"}], False),
    "null value": ([{"q": "가", "a": None, "id": "n1"}, {"q": "다", "a": "라", "id": "n2"}], False),
    "number value": ([{"q": "가", "a": 5, "id": "v1"}, {"q": "다", "a": "라", "id": "v2"}], False),
    "object value": ([{"q": "가", "a": {"t": 1}, "id": "o1"}, {"q": "다", "a": "라", "id": "o2"}], False),
    "key twice": ('{"q": "가", "a": "첫째", "a": "둘째", "id": "d1"}\n{"q": "다", "a": "라", "id": "d2"}\n', False),
    "nested key of the same name": ([{"q": "가", "a": "나", "id": "s1", "meta": {"a": "안"}}, {"q": "다", "a": "라", "id": "s2"}], False),
    "spacing differs": ('{"q": "가", "a": "나", "id": "w1"}\n{"q":"다","a":"라","id":"w2"}\n', False),
    "lone surrogate": ('{"q": "\\ud800", "a": "나", "id": "l1"}\n', False),
    "float id": ([{"q": "가", "a": "나", "id": 1.5}], False),
    "bool id": ([{"q": "가", "a": "나", "id": True}], False),
    "id missing": ([{"q": "가", "a": "나"}], False),
    "not an object": ('{"q": "가", "a": "나", "id": "j1"}\n["q", "a"]\n', False),
    "invalid JSON": ('{"q": "가", "a": "나", "id": "i1"}\n{"q": "다", "a": \n', False),
    "NaN": ('{"q": "가", "a": "나", "id": "z1", "x": NaN}\n', False),
    "another field in a later line": ([{"q": "가", "a": "나", "id": "k1"}, {"q": "다", "a": "라", "id": "k2", "x": "더"}],
                                      True),
    "nested too deeply": ('{"q": ' + "[" * 50_000 + "]" * 50_000 + ', "a": "나", "id": "r1"}\n{"q": "다", "a": "라", "id": "r2"}\n',
                          False),
    "fields in another order": ('{"q": "가", "a": "나", "id": "o1"}\n{"id": "o2", "a": "라", "q": "다"}\n', True),
}
# taken without a `fields` mapping too (every field then, as the record parser takes them), with and without `id`
_ALL_FIELDS_TAKEN = {"plain", "trailing blank lines", "fields in another order"}  # `\": ` inside a text: parse
_ALL_FIELDS_TAKEN_WITH_ID = _ALL_FIELDS_TAKEN | {"int ids, compact, crlf, BOM, no last newline"}
_ALL_FIELDS_TAKEN_WITHOUT = _ALL_FIELDS_TAKEN | {"id missing"}


def _same_both_ways(monkeypatch, path, **options):
    """``both_paths``, or the same error both ways (then None)."""
    from datafactory.sources.files import FilesSource
    from tests.conftest import both_paths

    try:
        fast, slow = both_paths(monkeypatch, "files", path, on_error="quarantine", **options)
    except SourceError as e:
        with pytest.raises(SourceError) as again:
            monkeypatch.setattr(FilesSource, "parse_batch", lambda self, files: None)
            read_source("files", path, on_error="quarantine", **options)
        monkeypatch.undo()
        assert str(again.value) == str(e)
        return None
    assert fast.frame.equals(slow.frame) and fast.frame.schema == slow.frame.schema, options
    assert (fast.quarantined, fast.quarantine) == (slow.quarantined, slow.quarantine)
    return fast, slow


@pytest.mark.parametrize("name", sorted(_JSONL_VARIANTS))
def test_files_jsonl_fast_path_gives_the_rows_of_the_record_parser(monkeypatch, tmp_path, name):
    """JSON Lines with a `fields` mapping are read by polars (a 300k-line file: 2.1 s -> 0.5 s); only where that gives
    exactly what the record parser gives: each variation is taken or left as listed, and gives the same rows, the
    same quarantine and the same error either way."""
    import gzip

    from datafactory.sources.files import FilesOptions, FilesSource
    from tests.conftest import both_paths

    lines, taken = _JSONL_VARIANTS[name]
    text = lines if isinstance(lines, str) else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines)
    (tmp_path / "d.jsonl").write_bytes(text.encode("utf-8"))
    (tmp_path / "more.jsonl.gz").write_bytes(gzip.compress('{"q": "끝", "a": "답", "id": "gz"}\n'.encode("utf-8")))
    for options in ({"fields": {"instruction": "q", "output": "a"}, "id": "id"},
                    {"fields": {"instruction": "q", "output": "a", "again": "q"}}):
        src = FilesSource("s", str(tmp_path), FilesOptions(**options))
        by_id_only = name in ("float id", "bool id", "id missing")  # taken where the id is not asked for
        assert src.parse_batch(src.inputs()).slow == ([] if taken or (by_id_only and "id" not in options) else [0])
        results = []
        for on_error in ("quarantine", "fail"):
            try:
                fast, slow = both_paths(monkeypatch, "files", tmp_path, on_error=on_error, **options)
                assert fast.frame.equals(slow.frame) and fast.frame.schema == slow.frame.schema, (name, options)
                assert (fast.quarantined, fast.quarantine) == (slow.quarantined, slow.quarantine)
                results.append(fast.frame.height)
            except SourceError as e:  # the same error both ways
                with pytest.raises(SourceError) as again:
                    monkeypatch.setattr(FilesSource, "parse_batch", lambda self, files: None)
                    read_source("files", tmp_path, on_error=on_error, **options)
                monkeypatch.undo()
                assert str(again.value) == str(e)
        assert results or not taken
    for options, taken in (({"id": "id"}, _ALL_FIELDS_TAKEN_WITH_ID), ({}, _ALL_FIELDS_TAKEN_WITHOUT)):
        src = FilesSource("s", str(tmp_path), FilesOptions(**options))  # no mapping: every field
        assert (src.parse_batch(src.inputs()).slow == []) == (name in taken), (name, options)
        _same_both_ways(monkeypatch, tmp_path, **options)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_files_jsonl_fast_path_on_mutated_files(monkeypatch, tmp_path, seed):
    """Files of JSON Lines with odd values, keys and lines at random: the fast path takes some files and leaves
    others, and both ways give the same rows and quarantine (a slip in what it checks fails this)."""
    import random

    from datafactory.sources.files import FilesOptions, FilesSource
    from tests.conftest import both_paths

    rng = random.Random(seed)
    odd = [None, 0, 7, 1.5, True, "", " ", {"t": 1}, ["x"], "\\ud800", "a\u2028b", "{\"a\": 1}"]
    for k in range(24):
        records = [{"q": f"질문 {k}.{i}", "a": f"답 {i}", "id": f"r{k}.{i}", "meta": rng.choice(odd)} for i in range(5)]
        lines = []
        for r in records:
            roll = rng.random()
            if roll < 0.04:
                r[rng.choice(["q", "a"])] = rng.choice(odd)
            elif roll < 0.06:
                del r["a"]
            line = json.dumps(r, ensure_ascii=rng.random() < 0.3, separators=rng.choice([(", ", ": "), (",", ":")])
                              if k % 3 == 0 else None)
            if roll > 0.98:
                line = line.replace('"q": ', '"q": "dup", "q": ', 1)
            lines.append(line)
        if rng.random() < 0.1:
            lines.insert(2, "")
        (tmp_path / f"f{k:02d}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    src = FilesSource("s", str(tmp_path), FilesOptions(fields={"instruction": "q", "output": "a"}, id="id"))
    assert 3 < len(src.parse_batch(src.inputs()).slow) < 21  # both paths are taken
    for options in ({"fields": {"instruction": "q", "output": "a"}, "id": "id"}, {"fields": {"output": "a"}}):
        assert _same_both_ways(monkeypatch, tmp_path, **options) is not None
    flat = tmp_path / "flat"  # without a mapping every field is read: `meta` as text (text beside objects is an error)
    flat.mkdir()
    for f in tmp_path.glob("*.jsonl"):
        lines = [json.loads(x) if x.strip().startswith("{") and "\\ud800" not in x and '"dup"' not in x else x
                 for x in f.read_text("utf-8").split("\n")]
        (flat / f.name).write_text("\n".join(x if isinstance(x, str) else json.dumps(
            {**x, "meta": json.dumps(x.get("meta"))}, ensure_ascii=False) for x in lines), "utf-8")
    src = FilesSource("s", str(flat), FilesOptions(id="id"))
    assert 0 < len(src.parse_batch(src.inputs()).slow) < 24  # both paths are taken
    for options in ({"id": "id"}, {}):
        assert _same_both_ways(monkeypatch, flat, **options) is not None


def test_a_zip_replaced_since_the_listing_names_the_member(tmp_path):
    """A zip rewritten between the listing and the read without a member it listed: a KeyError traceback from
    zipfile; now the member is named (or quarantined as unreadable)."""
    import zipfile

    from datafactory.sources.files import FilesOptions, FilesSource

    def write(*names):
        with zipfile.ZipFile(tmp_path / "r.zip", "w") as z:
            for n in names:
                z.writestr(n, json.dumps({"q": n}) + "\n")

    for on_error in ("fail", "quarantine"):
        write("a.jsonl", "b.jsonl")
        src = FilesSource("s", str(tmp_path), FilesOptions(), on_error=on_error)
        src.inputs()
        write("a.jsonl")
        if on_error == "fail":
            with pytest.raises(SourceError, match=r"r.zip!b.jsonl: no longer in its zip: was the zip replaced"):
                src.read()
        else:
            read = src.read()
            assert read.frame["q"].to_list() == ["a.jsonl"] and read.quarantined == {"unreadable": 1}


def test_files_in_worker_processes_hand_their_rows_over_as_arrow_files(monkeypatch, tmp_path):
    """A kind without a fixed schema has no cache parts: its workers' rows came back pickled through the pipe (for
    600k JSON Lines rows, longer than parsing them). They come as Arrow files in a temporary folder now, read and
    removed by the main process: the same rows and order as one process gives, and no folder left behind."""
    import tempfile

    import datafactory.sources.base as base

    for k in range(6):
        lines = [json.dumps({"id": f"{k}.{i}", "q": f"질문 {k}.{i}", "a": "답" if i % 7 else {"odd": i}},
                            ensure_ascii=False) for i in range(40)]
        (tmp_path / f"p{k}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    monkeypatch.setattr(base, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(base, "CHUNK_FILES", 2)
    made = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])
    for options in ({"fields": {"instruction": "q"}, "id": "id"}, {}):  # the columnar path, then the record parser
        monkeypatch.setenv("DATAFACTORY_WORKERS", "2")
        many = read_source("files", tmp_path, on_error="quarantine", **options)
        monkeypatch.setenv("DATAFACTORY_WORKERS", "1")
        one = read_source("files", tmp_path, on_error="quarantine", **options)
        assert many.frame.equals(one.frame) and many.frame.height == 6 * 40 - (6 * 6 if not options else 0)
        assert many.quarantined == one.quarantined
    ours = [d for d in made if os.path.basename(d).startswith("datafactory-rows-")]
    assert len(ours) == 2 and not any(os.path.exists(d) for d in ours)


def test_files_reads_conversations_in_openai_and_sharegpt_layouts(tmp_path):
    rows = [
        {"id": "a", "messages": [{"role": "system", "content": "친절하게 답하세요."},
                                 {"role": "user", "content": "밥이랑 달걀로 뭘 만들 수 있을까요?"},
                                 {"role": "assistant", "content": "채소는 좀 있나요?"},
                                 {"role": "user", "content": "대파만 조금 있어요."},
                                 {"role": "assistant", "content": "파 달걀볶음밥이 돼요."}]},
        {"id": "b", "messages": [{"from": "human", "value": "안녕?"}, {"from": "gpt", "value": "안녕하세요!"},
                                 {"from": "human", "value": "날씨 어때?"}]},
        {"id": "c", "messages": [{"role": "assistant", "content": "먼저 말하는 비서"}]},
        {"id": "d", "messages": [{"role": "narrator", "content": "?"}, {"role": "user", "content": "x"}]},
        {"id": "e", "messages": "not a list"},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    got = read_source("files", path, id="id", messages="messages", on_error="quarantine")
    frame = got.frame.sort("id")
    assert frame["id"].to_list() == ["s/a", "s/b"]
    a, b = frame.row(0, named=True), frame.row(1, named=True)
    assert a["instruction"] == "대파만 조금 있어요." and a["output"] == "파 달걀볶음밥이 돼요."
    assert a["history"] == [{"role": "system", "content": "친절하게 답하세요."},
                            {"role": "user", "content": "밥이랑 달걀로 뭘 만들 수 있을까요?"},
                            {"role": "assistant", "content": "채소는 좀 있나요?"}]
    assert b["instruction"] == "날씨 어때?" and b["output"] is None and b["history"][1]["content"] == "안녕하세요!"
    assert "messages" not in frame.columns
    assert got.quarantined == {"bad_conversation": 3}, got.quarantined
    with pytest.raises(SourceError, match=r"record 2: 'messages' has no user turn"):
        read_source("files", path, id="id", messages="messages")


def test_one_bad_line_is_quarantined_alone_and_nan_is_not_json(tmp_path):
    """One byte that is not UTF-8 in line 26 of 50 quarantined the whole file (49 good records lost, `raw: null`):
    only that line goes, kept as its bytes show. NaN and Infinity (Python's writer) became the text "NaN"/"inf":
    they are rejected, by line in JSON Lines and by record in a JSON array."""
    rows = [json.dumps({"qid": f"q{i}", "question": f"질문 {i}", "answer": f"답 {i}"}, ensure_ascii=False).encode()
            for i in range(50)]
    rows[25] = rows[25][:10] + b"\xff" + rows[25][10:]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    opts = {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}
    got = read_source("files", tmp_path / "bad.jsonl", on_error="quarantine", **opts)
    assert got.frame.height == 49 and got.quarantined == {"encoding": 1}
    assert got.quarantine[0]["record"] == 25 and "\\xff25" in got.quarantine[0]["raw"]
    with pytest.raises(SourceError, match=r"line 26: not valid utf-8 at byte 10"):
        read_source("files", tmp_path / "bad.jsonl", **opts)
    # a whole file in another encoding is still named as such (not 50 bad lines)
    (tmp_path / "cp.jsonl").write_bytes(b"\n".join(r.decode().encode("cp949") for r in rows if b"\xff" not in r))
    with pytest.raises(SourceError, match=r"not valid utf-8 at byte \d+; set `encoding: cp949`"):
        read_source("files", tmp_path / "cp.jsonl", **opts)
    (tmp_path / "nan.jsonl").write_text('{"qid": "a", "question": "x", "answer": NaN}\n'
                                        '{"qid": "b", "question": "y", "answer": "ok"}\n'
                                        '{"qid": "c", "question": "z", "answer": Infinity}\n', "utf-8")
    got = read_source("files", tmp_path / "nan.jsonl", on_error="quarantine", **opts)
    assert got.frame["output"].to_list() == ["ok"] and got.quarantined == {"malformed_json": 2}
    assert "NaN is not JSON" in got.quarantine[0]["detail"]
    (tmp_path / "nan.json").write_text('[{"qid": "a", "question": "x", "answer": NaN}, {"qid": "b", "question": "y", '
                                       '"answer": "ok"}]', "utf-8")
    got = read_source("files", tmp_path / "nan.json", on_error="quarantine", **opts)
    assert got.frame["output"].to_list() == ["ok"] and "field 'output' is nan" in got.quarantine[0]["detail"]


def test_zip_members_that_lead_outside_the_archive_are_named_and_counted(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../../x.jsonl", '{"qid": "z1", "question": "a", "answer": "b"}\n')
        z.writestr("..\\..\\y.jsonl", '{"qid": "z2", "question": "a", "answer": "b"}\n')
        z.writestr("/abs.jsonl", '{"qid": "z4", "question": "a", "answer": "b"}\n')
        z.writestr("ok.jsonl", '{"qid": "z3", "question": "a", "answer": "b"}\n')
    opts = {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}
    got = read_source("files", tmp_path / "evil.zip", on_error="quarantine", **opts)
    assert got.frame["id"].to_list() == ["s/z3"] and got.quarantined == {"unsafe_path": 3}
    assert {q["file"] for q in got.quarantine} == {"evil.zip!../../x.jsonl", "evil.zip!..\\..\\y.jsonl", "evil.zip!/abs.jsonl"}
    with pytest.raises(SourceError, match=r"evil\.zip!\.\./\.\./x\.jsonl.*leads outside the archive"):
        read_source("files", tmp_path / "evil.zip", **opts)
    assert not (tmp_path.parent / "x.jsonl").exists()


def test_a_lone_surrogate_and_utf16_without_a_bom_are_named_for_what_they_are(tmp_path):
    """A record whose text holds a lone surrogate escape was reported as `text in record r0 and text in record odd`
    and quarantine did not take it; a UTF-16 file without a byte-order mark was never named as such."""
    (tmp_path / "sur.jsonl").write_text('{"qid": "r0", "question": "ok", "answer": "a"}\n'
                                        '{"qid": "odd", "question": "bad \\ud800 x", "answer": "b"}\n', "utf-8")
    opts = {"id": "qid", "fields": {"instruction": "question", "output": "answer"}}
    with pytest.raises(SourceError, match=r"record odd: field 'instruction' holds half of a character \(a lone "
                                          r"surrogate escape"):
        read_source("files", tmp_path / "sur.jsonl", **opts)
    got = read_source("files", tmp_path / "sur.jsonl", on_error="quarantine", **opts)
    assert got.frame["id"].to_list() == ["s/r0"] and got.quarantined == {"encoding": 1}
    (tmp_path / "u16.tsv").write_bytes("qid\tquestion\tanswer\nq1\t질문입니다\t답입니다\n".encode("utf-16-le"))
    for encoding in ("auto", "utf-8"):
        with pytest.raises(SourceError, match=r"looks like UTF-16 \(little-endian\) without the byte-order mark"):
            read_source("files", tmp_path / "u16.tsv", encoding=encoding, **opts)
