"""The seed's whole RLHF pipeline, offline, at toy scale, on a CPU in a few minutes:

    python trainers/loop.py

 1. datafactory build sft_v2                       SFT data (teacher answers from the sample answers)
 2. python trainers/tiny_model.py                  a tiny GPT-NeoX built from a config, tokenizer trained on the data
 3. python trainers/sft.py --dataset sft_v2        -> models/sft_v2
 4. datafactory build rm_v3 --llm loop             the SFT model writes its answers locally (transformers, real
                                                   generation); the sample teacher; a rule-of-thumb judge
 5. python trainers/rm.py --dataset rm_v3          -> models/rm_v3, accuracy on the held-out pairs
 6. datafactory build ppo_v1 --llm loop            PPO prompts
 7. python trainers/ppo.py --dataset ppo_v1        -> models/ppo-ppo_v1, the before/after report and reward plot
 8. python trainers/eval.py ...                    RM accuracy, KoBEST, G-Eval of the SFT and PPO models

Each step is the command a user types (printed before it runs), with trainers/configs/tiny/*.yaml for toy-scale
settings. The models are toys: a tiny model learns only the samples' surface. With a real model folder (e.g.
`--base ~/models/polyglot-ko-1.3b`, no tiny model then) and a GPU, the same commands train real models.
Afterwards `python trainers/ppo.py --dataset rm_v3` works as typed: it finds models/sft_v2 and models/rm_v3.
"""
from __future__ import annotations

import argparse
import json
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
    a = ap.parse_args(argv)
    from datafactory.training import models_dir, project_root

    root, models = project_root(), models_dir()
    configs = Path(a.configs)
    py, t0 = sys.executable, time.time()

    def step(title: str, *cmd: str) -> None:
        shown = " ".join(shlex.quote(c) for c in cmd).replace(py, "python").replace(str(HERE) + "/", "trainers/")
        print(f"\n== {title}\n$ {shown}", flush=True)
        if subprocess.run(cmd, cwd=root).returncode != 0:
            raise SystemExit(f"error: the loop stopped at: {shown}")

    cli = (py, "-m", "datafactory")
    step("1. SFT data", *cli, "build", "sft_v2")
    base = a.base
    if base is None:
        base = str(models / "tiny-gpt-neox")
        step("2. a tiny GPT-NeoX (built from a config; not a real model)", py, str(HERE / "tiny_model.py"),
             "--dataset", "sft_v2", "--output", base)
    step("3. SFT", py, str(HERE / "sft.py"), "--config", str(configs / "sft.yaml"), "--dataset", "sft_v2",
         "--model", base)
    step("4. reward-model data: the SFT model answers locally", *cli, "build", "rm_v3", "--llm", "loop")
    step("5. reward model", py, str(HERE / "rm.py"), "--config", str(configs / "rm.yaml"), "--dataset", "rm_v3")
    step("6. PPO prompts", *cli, "build", "ppo_v1", "--llm", "loop")
    step("7. PPO", py, str(HERE / "ppo.py"), "--config", str(configs / "ppo.yaml"), "--dataset", "ppo_v1")
    ppo = models / "ppo-ppo_v1"
    step("8. evaluation", py, str(HERE / "eval.py"), "--model", str(models / "sft_v2"), "--model", str(ppo),
         "--reward_model", str(models / "rm_v3"), "--kobest", "--geval", "ppo_v1", "--llm", "loop")

    report = json.loads((ppo / "report.json").read_text("utf-8"))
    print(f"\n== done in {time.time() - t0:.0f} s" + ("" if a.base else " (tiny GPT-NeoX from a config: a toy, the numbers "
                                                          "show the pipeline runs, not model quality)"))
    print((ppo / "report.md").read_text("utf-8"))
    print(f"mean reward before PPO {report['mean_reward_before']:+.3f}, after {report['mean_reward_after']:+.3f}")
    print(f"report: {ppo / 'report.md'}\nplot:   {ppo / 'ppo_rewards.png'}\nevals:  {root / 'evals' / 'results.md'}")
    print("next: python trainers/ppo.py --dataset rm_v3   (finds models/sft_v2 and models/rm_v3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
