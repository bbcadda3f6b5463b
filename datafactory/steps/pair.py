"""pair: chosen/rejected preference rows from the answers to each prompt (rows grouped by ``prompt_id``).

    - pair: {by: score}                                  # the seed's rule (VAIV rank.py): the higher judge total
                                                         # wins; ties and pairs whose totals are both under
                                                         # min_total are dropped, each counted
    - pair: {by: role, chosen: teacher, rejected: sft}   # RM v2/v3: the teacher's answer is chosen
    - pair: {by: score, labels: labels/rm_v3.jsonl}      # human labels where they exist, the judge elsewhere

``labels`` (optional) is a JSONL file of human judgements, one per line:
``{"prompt": ..., "response_a": ..., "response_b": ..., "winner": "a" | "b" | "tie" | "both_bad"}``. A label
matches a pair by its prompt and its two answers (in either order), so labels survive a rebuild in which the pair
is unchanged; a human label wins over the judge, ties and both-bad are dropped and counted. With more than two
answers to a prompt, the best and the worst make the pair.

Output: one row per prompt: ``id`` = the prompt's id, ``chosen``, ``rejected``, ``chosen_role``,
``rejected_role``, ``chosen_score``, ``rejected_score`` (judge totals, when judged), ``label_source`` (judge,
role or human), and the prompt's own columns.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from datafactory.errors import DataFactoryError
from datafactory.hashing import digest
from datafactory.steps.base import LINEAGE, Params, Step, StepContext, StepError, require_columns

DROP = {"response", "response_role", "response_index", "scores", "score_total", "llm_calls", "prompt_id"}


class PairParams(Params):
    by: Literal["score", "role"] = "score"
    chosen: str | None = None  # by: role
    rejected: str | None = None
    min_total: float | None = None  # by: score: both totals under this -> dropped (the seed used 20 of 30)
    margin: float = Field(default=0.0, ge=0)  # by: score: |a - b| <= margin is a tie
    labels: str | None = None
    group: str = "prompt_id"
    response: str = "response"
    prompt_text: str = "instruction"  # what a human label's "prompt" is matched against


def pair_key(prompt: str, a: str, b: str) -> str:
    """A pair's identity for human labels: its prompt and its two answers, in either order."""
    return digest("pair", prompt.strip(), sorted([a.strip(), b.strip()]))


class Pair(Step):
    name = "pair"
    Params = PairParams

    def labels_path(self) -> Path | None:
        if not self.params.labels:
            return None
        path = Path(self.params.labels).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def identity(self) -> dict:  # new labels make a new version
        path = self.labels_path()
        return {"labels": path.read_text("utf-8") if path is not None and path.exists() else None}

    def _labels(self) -> dict[str, dict]:
        path = self.labels_path()
        if path is None or not path.exists():
            return {}
        out = {}
        for i, line in enumerate(path.read_text("utf-8").splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out[pair_key(rec["prompt"], rec["response_a"], rec["response_b"])] = rec
            except (ValueError, KeyError) as e:
                raise DataFactoryError(f"{path}, line {i + 1}: a label needs prompt, response_a, response_b and "
                                       f"winner ({e})") from None
        return out

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.group, p.response, "response_role"] + (["score_total"] if p.by == "score" else []))
        if p.by == "role" and not (p.chosen and p.rejected):
            raise StepError("by: role needs `chosen` and `rejected` roles (e.g. chosen: teacher, rejected: sft)")
        labels = self._labels()
        keep = [c for c in df.columns if c not in DROP and c not in LINEAGE]
        out, used_labels = [], 0
        for _, g in df.group_by(p.group, maintain_order=True):
            rows = g.to_dicts()
            first = rows[0]
            prompt = str(first.get(p.prompt_text) or "")
            if len(rows) < 2:
                ctx.drop("single_answer", 1)
                continue
            if p.by == "role":
                by_role = {r["response_role"]: r for r in rows}
                if p.chosen not in by_role or p.rejected not in by_role:
                    ctx.drop("missing_role", len(rows))
                    continue
                chosen, rejected, source = by_role[p.chosen], by_role[p.rejected], "role"
            else:
                ranked = sorted(rows, key=lambda r: -(r["score_total"] if r["score_total"] is not None else -1e9))
                chosen, rejected, source = ranked[0], ranked[-1], "judge"
            label = labels.get(pair_key(prompt, chosen[p.response], rejected[p.response]))
            if label is not None:
                used_labels += 1
                winner = label.get("winner")
                if winner in ("tie", "both_bad"):
                    ctx.drop(f"human_{winner}", len(rows))
                    continue
                a_is_chosen = label["response_a"].strip() == chosen[p.response].strip()
                if (winner == "a") != a_is_chosen:
                    chosen, rejected = rejected, chosen
                source = "human"
            elif p.by == "score":
                a, b = chosen["score_total"], rejected["score_total"]
                if a is None or b is None:
                    ctx.drop("unscored", len(rows))
                    continue
                if abs(a - b) <= p.margin:
                    ctx.drop("tie", len(rows))
                    continue
                if p.min_total is not None and a < p.min_total and b < p.min_total:
                    ctx.drop("both_low", len(rows))
                    continue
            ctx.drop("answers_merged_into_a_pair", len(rows) - 1)
            out.append({"id": first[p.group], "source": first["source"], **{c: first[c] for c in keep},
                        "chosen": chosen[p.response], "rejected": rejected[p.response],
                        "chosen_role": chosen["response_role"], "rejected_role": rejected["response_role"],
                        "chosen_score": chosen.get("score_total"), "rejected_score": rejected.get("score_total"),
                        "label_source": source,
                        "llm_calls": list(dict.fromkeys([*(chosen.get("llm_calls") or []),
                                                          *(rejected.get("llm_calls") or [])]))})
        if labels:
            ctx.info["human_labels"] = used_labels
        schema = {c: df.schema[c] for c in ["id", "source", *keep]}
        schema.update({"chosen": pl.String, "rejected": pl.String, "chosen_role": pl.String, "rejected_role": pl.String,
                       "chosen_score": pl.Float64, "rejected_score": pl.Float64, "label_source": pl.String,
                       "llm_calls": pl.List(pl.String)})
        return pl.DataFrame(out, schema=schema)
