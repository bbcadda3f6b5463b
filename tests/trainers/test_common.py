"""The trainers' shared helper (datafactory/training.py): command line, datasets by name, finding models, and
the errors a user meets before any training."""
from __future__ import annotations

import json
import sys

import pytest

from datafactory.training import TrainingError, find_model, parse, resolve_dataset, same_template
from tests.trainers.conftest import TRAINERS, copy_project, run


def test_defaults_then_yaml_then_command_line(tmp_path):
    from trl import SFTConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 0.1\nnum_train_epochs: 5\n")
    data, train, model = parse(SFTConfig, {"num_train_epochs": 3, "learning_rate": 2e-5, "max_length": 77},
                               argv=["--dataset", "x", "--config", str(cfg), "--num_train_epochs", "2",
                                     "--model", "m/path", "--lora"])
    assert (train.learning_rate, train.num_train_epochs, train.max_length) == (0.1, 2, 77)
    assert model.model_name_or_path == "m/path" and model.use_peft is True and data.dataset == "x"
    assert train.bf16 is False and train.use_cpu is True  # no GPU here: TRL's bf16 default would refuse to start


def test_a_mistyped_argument_or_config_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    """TRL's parser raised a ValueError (a traceback) for an argument no dataclass has; now argparse's usage error
    (exit 2) names it and the option it is closest to. A --config file that is missing, not a mapping, not UTF-8,
    has unknown keys or a key written twice (TRL kept the last one) is the same kind of error."""
    from trl import SFTConfig

    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n")
    odd = tmp_path / "odd.yaml"
    odd.write_text("learning_rat: 0.1\n")
    twice = tmp_path / "twice.yaml"
    twice.write_text("learning_rate: 0.1\nnum_train_epochs: 2\nlearning_rate: 0.5\n")
    korean = tmp_path / "cp949.yaml"
    korean.write_bytes("# 학습률\nlearning_rate: 0.1\n".encode("cp949"))
    for argv, said in ((["--dataset", "x", "--lerning_rate", "2"], "unrecognized arguments: --lerning_rate 2 "
                                                                   "(did you mean '--learning_rate'?)"),
                       (["--dataset", "x", "--epochs", "-1"], "unrecognized arguments: --epochs -1"),
                       (["--dataset", "x", "--config", str(tmp_path / "no.yaml")], "--config: no such file"),
                       (["--dataset", "x", "--config", str(bad)], "must contain a YAML mapping"),
                       (["--dataset", "x", "--config", str(odd)], "--config: unrecognized keys"),
                       (["--dataset", "x", "--config", str(twice)], "twice.yaml: not valid YAML: line 3, column 1: "
                                                                    "the key 'learning_rate' is written twice"),
                       (["--dataset", "x", "--config", str(korean)], "cp949.yaml: not UTF-8 at byte 2")):
        with pytest.raises(SystemExit) as e:
            parse(SFTConfig, {}, argv=argv)
        assert e.value.code == 2 and said in capsys.readouterr().err, argv


def test_qlora_without_a_gpu_is_a_clear_error():
    from trl import SFTConfig

    with pytest.raises(TrainingError, match="CUDA GPU"):
        parse(SFTConfig, {}, argv=["--dataset", "x", "--qlora"])


def test_an_unbuilt_dataset_says_how_to_build_it(tmp_path, monkeypatch):
    root = copy_project(tmp_path)
    monkeypatch.chdir(root)
    monkeypatch.delenv("DATAFACTORY_DATA", raising=False)
    with pytest.raises(TrainingError, match=r"datafactory build rm_v3"):
        resolve_dataset("rm_v3")
    with pytest.raises(TrainingError, match=r"no recipe recipes/rm_v9"):
        resolve_dataset("rm_v9")


def test_a_dataset_without_the_columns_a_stage_needs(built):
    project, result = built
    with pytest.raises(TrainingError, match=r"no column chosen, rejected: the reward model needs"):
        resolve_dataset("sft", project.data, columns=("prompt", "chosen", "rejected"), stage="the reward model")


def fake_model(root, name, stage, dataset, finished, template=None):
    folder = root / "models" / name
    folder.mkdir(parents=True)
    (folder / "datafactory.json").write_text(json.dumps({
        "stage": stage, "complete": True, "finished": finished,
        "dataset": {"name": dataset, "ref": f"{dataset}@abc", "template": template}}))
    return folder


def test_find_model_prefers_the_lineage_then_the_newest(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAFACTORY_MODELS", str(tmp_path / "models"))
    fake_model(tmp_path, "a", "sft", "sft_v1", "2026-01-02")
    fake_model(tmp_path, "b", "sft", "sft_v2", "2026-01-01")
    fake_model(tmp_path, "r", "rm", "rm_v3", "2026-01-01")
    folder, _, why = find_model("sft", ["rm_v3", "sft_v2"])
    assert folder.name == "b" and "trained on sft_v2@abc" in why
    folder, _, why = find_model("sft", ["ppo_v9"])
    assert folder.name == "a" and "newest" in why
    with pytest.raises(TrainingError, match="no DPO model"):
        find_model("dpo", [])


def test_ppo_without_models_says_how_to_make_both(built):
    project, result = built
    p = run(project.root, "python", str(TRAINERS / "ppo.py"), "--dataset", "sft", check=False)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "error: PPO on sft@" in p.stderr
    assert "python trainers/sft.py --dataset" in p.stderr and "python trainers/rm.py --dataset" in p.stderr


def test_ppo_refuses_a_prompt_template_the_sft_model_was_not_trained_with(built, monkeypatch):
    project, result = built
    monkeypatch.setenv("DATAFACTORY_MODELS", str(project.root / "models"))
    fake_model(project.root, "sft_x", "sft", "other", "2026-01-01", template={"prompt_no_input": "Q: {instruction}\nA:"})
    fake_model(project.root, "rm_x", "rm", "other", "2026-01-01")
    from datafactory.rl import RLArguments, find_models

    ds = resolve_dataset("sft", project.data)
    args = type("A", (), {"model": None})()
    with pytest.raises(TrainingError, match="another template"):
        find_models(ds, args, RLArguments(), "PPO")
    sft, rm, notes = find_models(ds, args, RLArguments(allow_template_mismatch=True), "PPO")
    assert sft.endswith("sft_x") and rm.endswith("rm_x") and len(notes) == 2
    p = run(project.root, "python", str(TRAINERS / "grpo.py"), "--dataset", "sft", check=False)
    assert p.returncode == 1 and "another template" in p.stderr and "--allow_template_mismatch" in p.stderr


def test_templates_compare_by_text_not_by_the_variants_used():
    a = {"name": "kullm", "prompt_no_input": "x {instruction}", "used": {"prompt_no_input": 3}}
    assert same_template(a, {**a, "used": {"prompt_input": 1}})
    assert not same_template(a, {**a, "prompt_no_input": "y {instruction}"})


def test_a_trainer_writes_korean_under_a_locale_that_cannot(tmp_path):
    """Under an ASCII locale (`LANG=en_US` on a cluster, a C locale without Python's coercion) a trainer's messages
    naming a Korean dataset came out as `\\udced\\udc95...`, and printing a Korean answer died with
    UnicodeEncodeError; its output is UTF-8 then, as the datafactory program's is."""
    import subprocess

    from tests.trainers.conftest import env

    root = copy_project(tmp_path)
    c_locale = {**env(), "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    c_locale.pop("PYTHONIOENCODING", None)
    p = subprocess.run([sys.executable, str(TRAINERS / "sft.py"), "--dataset", "한국어_sft"], cwd=root, env=c_locale,
                       capture_output=True, timeout=300)
    err = p.stderr.decode("utf-8")
    assert p.returncode == 1 and "error: no built dataset '한국어_sft'" in err and "Traceback" not in err, err
    # the child really ran where Hangul cannot be written (else the test proves nothing)
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.encoding, sys.stderr.encoding)"],
                           env=c_locale, capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["ascii", "ascii"] or all(e.lower() in ("ansi_x3.4-1968", "ascii")
                                                            for e in probe.stdout.split()), probe.stdout
