"""The seed's whole RLHF pipeline, offline, at toy scale, on a CPU in a few minutes:

    python trainers/loop.py

 1. datafactory build sft_v2                       SFT data (teacher answers from the sample answers)
 2. python trainers/tiny_model.py                  a tiny GPT-NeoX built from a config, tokenizer trained on the data
 3. python trainers/sft.py --dataset sft_v2        -> models/loop-sft_v2
 4. datafactory build rm_v3 --llm loop             the SFT model writes its answers locally (transformers, real
                                                   generation); the sample teacher; a rule-of-thumb stand-in judge
 5. python trainers/rm.py --dataset rm_v3          -> models/loop-rm_v3, accuracy on the held-out pairs
 6. python trainers/dpo.py --dataset rm_v3         -> models/loop-dpo-rm_v3, the held-out reward margin
 7. datafactory build ppo_v1 --llm loop            PPO prompts
 8. python trainers/ppo.py --dataset ppo_v1        -> models/loop-ppo-ppo_v1, the before/after report and reward plot
 9. python trainers/grpo.py --dataset ppo_v1       -> models/loop-grpo-ppo_v1, the same report
10. python trainers/eval.py ...                    RM accuracy, KoBEST, G-Eval of the SFT, PPO and GRPO models

The loop keeps to itself: its datasets are built in loop/data (DATAFACTORY_DATA), never in the project's data/, so
the names a user built (`rm_v3`, `sft_v2`) keep pointing at their versions; its models go to models/loop-*
(marked as toys in datafactory.json: a trainer looking for an SFT or reward model takes a real one first); its
evaluation to loop/evals. Each step is the command a user types (printed before it runs), with
trainers/configs/tiny/*.yaml for toy-scale settings; the trainers' library messages go to train.log beside each model
(`--verbose` shows them). The models are toys: a tiny model learns only the samples' surface. The RL stages report
whether the policy moved by more than the spread across sampling seeds, and DPO its held-out margin, and say so
when nothing moved. With a real model folder (`--base ~/models/polyglot-ko-1.3b`, no tiny model then) and a GPU,
the same commands train real models.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=None, help="a real base model folder instead of the tiny GPT-NeoX")
    ap.add_argument("--configs", default=str(HERE / "configs" / "tiny"), help="YAML settings per trainer")
    ap.add_argument("--verbose", action="store_true", help="the libraries' warnings and progress bars too")
    a = ap.parse_args(argv)
    from datafactory.training import models_dir, project_root, project_relative

    root, models = project_root(), models_dir()
    home = root / "loop"
    env = {**os.environ, "DATAFACTORY_DATA": str(home / "data"), "DATAFACTORY_LOOP": "1"}
    configs = Path(a.configs)
    py, t0 = sys.executable, time.time()
    sft, rm, dpo = models / "loop-sft_v2", models / "loop-rm_v3", models / "loop-dpo-rm_v3"
    ppo, grpo = models / "loop-ppo-ppo_v1", models / "loop-grpo-ppo_v1"
    quiet = ["--verbose"] if a.verbose else []

    def step(title: str, *cmd: str) -> None:
        shown = " ".join(shlex.quote(project_relative(Path(c)) if c.startswith(str(root)) else c) for c in cmd)
        shown = shown.replace(py, "python").replace(str(HERE) + "/", "trainers/")
        print(f"\n== {title}\n$ {shown}", flush=True)
        if subprocess.run(cmd, cwd=root, env=env).returncode != 0:
            raise SystemExit(f"error: the loop stopped at: {shown}")

    def trainer(name: str, *args: str) -> tuple[str, ...]:
        return (py, str(HERE / f"{name}.py"), "--config", str(configs / f"{name}.yaml"), *args, *quiet)

    print(f"the loop's datasets: {project_relative(home / 'data')} (the project's data/ is not touched); its models: "
          f"{project_relative(models)}/loop-*", flush=True)
    cli = (py, "-m", "datafactory")
    step("1. SFT data", *cli, "build", "sft_v2")
    base = a.base
    if base is None:
        base = str(models / "loop-tiny-gpt-neox")
        step("2. a tiny GPT-NeoX (built from a config; not a real model)", py, str(HERE / "tiny_model.py"),
             "--dataset", "sft_v2", "--output", base, *quiet)
    step("3. SFT", *trainer("sft", "--dataset", "sft_v2", "--model", base, "--output", str(sft)))
    step("4. reward-model data: the SFT model answers locally", *cli, "build", "rm_v3", "--llm", "loop")
    step("5. reward model", *trainer("rm", "--dataset", "rm_v3", "--model", str(sft), "--output", str(rm)))
    step("6. DPO", *trainer("dpo", "--dataset", "rm_v3", "--model", str(sft), "--output", str(dpo)))
    step("7. PPO prompts", *cli, "build", "ppo_v1", "--llm", "loop")
    step("8. PPO", *trainer("ppo", "--dataset", "ppo_v1", "--model", str(sft), "--reward_model", str(rm),
                            "--output", str(ppo)))
    step("9. GRPO", *trainer("grpo", "--dataset", "ppo_v1", "--model", str(sft), "--reward_model", str(rm),
                             "--output", str(grpo)))
    step("10. evaluation", py, str(HERE / "eval.py"), "--model", str(sft), "--model", str(ppo), "--model", str(grpo),
         "--reward_model", str(rm), "--kobest", "--geval", "ppo_v1", "--llm", "loop", "--output", str(home / "evals"),
         *quiet)

    print(f"\n== done in {time.time() - t0:.0f} s" + ("" if a.base else " (a tiny GPT-NeoX from a config: a toy; the "
                                                          "numbers show the pipeline runs, not model quality)"))
    for stage, folder in (("PPO", ppo), ("GRPO", grpo)):
        report = json.loads((folder / "report.json").read_text("utf-8"))
        print(f"{stage}: {report['verdict']['sentence']}")
    margin = json.loads((dpo / "datafactory.json").read_text("utf-8"))["metrics"].get("moved", {})
    if margin:
        print(f"DPO: {margin['sentence']}")
    print(f"reports: {project_relative(ppo / 'report.md')}, {project_relative(grpo / 'report.md')}; evaluation: "
          f"{project_relative(home / 'evals' / 'results.md')}")
    print(f"the loop's data: datafactory --data {project_relative(home / 'data')} show rm_v3")
    print("next: python trainers/ppo.py --dataset rm_v3   (takes a real SFT and reward model first, else the "
          "loop's toys)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
