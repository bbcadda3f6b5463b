"""pair: chosen/rejected preference rows from the answers to each prompt (rows grouped by ``prompt_id``).

    - pair: {by: score}                                  # the seed's rule (VAIV rank.py): the higher judge total
                                                         # wins; ties and pairs whose totals are both under
                                                         # min_total are dropped, each counted
    - pair: {by: role, chosen: teacher, rejected: sft}   # RM v2/v3: the teacher's answer is chosen
    - pair: {by: score, labels: labels/rm_v3.jsonl}      # and the human labels of a JSONL file

Human labels win over the judge and the role rule: those made with ``datafactory label`` (the data folder's label
store, given to the step by the engine; ``human: false`` ignores them) and those of a ``labels`` file (JSONL, one
per line: ``{"prompt": ..., "response_a": ..., "response_b": ..., "winner": "a" | "b" | "tie" | "both_bad"}``,
optionally with ``annotator``; what ``datafactory labels export`` writes). A label matches a pair by its prompt and
its two answers in either order (``datafactory.labels.pair_key``), so labels survive a rebuild in which the pair
is unchanged. Several annotators: the majority of their latest labels; human ties, both-bad and even splits drop
the pair, each counted. With more than two answers to a prompt, the best and the worst make the pair.

Output: one row per prompt: ``id`` = the prompt's id, ``chosen``, ``rejected``, ``chosen_role``,
``rejected_role``, ``chosen_score``, ``rejected_score`` (judge totals, when judged), ``label_source`` (judge,
role or human), and the prompt's own columns. Every candidate pair, kept or dropped, goes to the version's
``tables/pairs.parquet`` (what ``datafactory label`` serves); the manifest counts human, judge and role labels per
source and how often the people agreed with the judge. Drops are counted in pairs (``tie: 1`` is one pair, not its
two answers); the other answers of a dropped or kept pair are counted apart (``answers_of_dropped_pairs``,
``answers_merged_into_a_pair``), so the rows still add up.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from datafactory.conversations import messages_type
from datafactory.labels import PAIRS_TABLE, HumanLabels, human_labels, pair_key, read_label_file
from datafactory.steps.base import LINEAGE, Params, Step, StepContext, StepError, require_columns

__all__ = ["Pair", "PairParams", "pair_key"]

DROP = {"response", "response_role", "response_index", "scores", "score_total", "llm_calls", "prompt_id"}


class PairParams(Params):
    by: Literal["score", "role"] = "score"
    chosen: str | None = None  # by: role
    rejected: str | None = None
    min_total: float | None = None  # by: score: both totals under this -> dropped (the seed used 20 of 30)
    margin: float = Field(default=0.0, ge=0)  # by: score: |a - b| <= margin is a tie
    labels: str | None = None  # a JSONL file of human labels (path from the project root)
    human: bool = True  # the labels made with `datafactory label` (the data folder's label store)
    group: str = "prompt_id"
    response: str = "response"
    prompt_text: str = "instruction"  # what a human label's "prompt" is matched against


class Pair(Step):
    name = "pair"
    Params = PairParams
    cache = True  # its output depends on the label store, not only on its input: kept, so `trace` shows it as built

    def __init__(self, params, base_dir: Path | None = None):
        super().__init__(params, base_dir)
        self.human_rows: list[dict] = []  # the label store's live labels, given by the engine (see uses_labels)
        self.dataset: str | None = None  # the recipe's name: its own labels whose pair is gone are reported
        self._human: HumanLabels | None = None

    def uses_labels(self) -> bool:
        """Whether the engine gives this step the data folder's human labels (``human_rows``, ``dataset``)."""
        return self.params.human

    def labels_path(self) -> Path | None:
        if not self.params.labels:
            return None
        path = Path(self.params.labels).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def _file_labels(self) -> list[dict]:
        path = self.labels_path()
        if path is None:
            return []
        if not path.is_file():
            raise StepError(f"labels: no such file {path}; write it with `datafactory labels export FILE`, or remove "
                            "`labels:` to use the label store only")
        return read_label_file(path)

    def _resolved(self) -> HumanLabels:
        if self._human is None:
            self._human = human_labels(self.human_rows + self._file_labels(), self.dataset)
        return self._human

    def identity(self) -> dict:  # new labels make a new version
        labels = self._resolved()
        return {"labels": labels.identity()}

    def apply(self, df: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        require_columns(df, [p.group, p.response, "response_role"] + (["score_total"] if p.by == "score" else []))
        if p.by == "role" and not (p.chosen and p.rejected):
            raise StepError("by: role needs `chosen` and `rejected` roles (e.g. chosen: teacher, rejected: sft)")
        human = self._resolved()
        keep = [c for c in df.columns if c not in DROP and c not in LINEAGE]
        out, table, seen = [], [], set()
        counts: dict[str, Counter] = defaultdict(Counter)
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
                    ctx.drop("missing_role", 1)  # a prompt (a pair not made); its answers counted apart
                    ctx.drop("answers_of_unpaired_prompts", len(rows) - 1)
                    continue
                a, b, decided_by, verdict = by_role[p.chosen], by_role[p.rejected], "role", "a"
            else:
                ranked = sorted(rows, key=lambda r: -(r["score_total"] if r["score_total"] is not None else -1e9))
                a, b, decided_by = ranked[0], ranked[-1], "judge"
                sa, sb = a["score_total"], b["score_total"]
                if sa is None or sb is None:
                    verdict = "unscored"
                elif abs(sa - sb) <= p.margin:
                    verdict = "tie"
                elif p.min_total is not None and sa < p.min_total and sb < p.min_total:
                    verdict = "both_low"
                else:
                    verdict = "a"
            key = pair_key(prompt, a[p.response], b[p.response])
            seen.add(key)
            verdict_human = human.outcomes.get(key)
            source_counts = counts[first["source"]]
            chosen, rejected, label_source, dropped = a, b, decided_by, None
            if verdict_human is not None:
                source_counts["human_labelled"] += 1
                if decided_by == "judge" and verdict == "a" and verdict_human.outcome == "winner":
                    source_counts["compared_with_judge"] += 1
                    source_counts["agree_with_judge"] += verdict_human.winner_is(a[p.response])
                if verdict_human.outcome != "winner":
                    dropped = f"human_{verdict_human.outcome}"
                else:
                    if verdict_human.winner_is(b[p.response]):
                        chosen, rejected = b, a
                    label_source = "human"
            elif verdict != "a":
                dropped = verdict
            table.append({"id": first[p.group], "source": first["source"], "pair_key": key, "prompt": prompt,
                          "context": first.get("prompt") if isinstance(first.get("prompt"), str) else None,
                          "turns": first.get("history") if isinstance(first.get("history"), list) else [],
                          "response_a": a[p.response], "response_b": b[p.response],
                          "role_a": a["response_role"], "role_b": b["response_role"],
                          "score_a": a.get("score_total"), "score_b": b.get("score_total"),
                          "judge": verdict, "decided_by": decided_by,
                          "human": verdict_human.outcome if verdict_human is not None else None,
                          "outcome": dropped or "kept"})
            if dropped:
                ctx.drop(dropped, 1)  # a pair (tie, both_low, a human's verdict): counted once, as a pair
                ctx.drop("answers_of_dropped_pairs", len(rows) - 1)
                continue
            source_counts[label_source] += 1
            ctx.drop("answers_merged_into_a_pair", len(rows) - 1)
            out.append({"id": first[p.group], "source": first["source"], **{c: first[c] for c in keep},
                        "chosen": chosen[p.response], "rejected": rejected[p.response],
                        "chosen_role": chosen["response_role"], "rejected_role": rejected["response_role"],
                        "chosen_score": chosen.get("score_total"), "rejected_score": rejected.get("score_total"),
                        "label_source": label_source,
                        "llm_calls": list(dict.fromkeys([*(chosen.get("llm_calls") or []),
                                                          *(rejected.get("llm_calls") or [])]))})
        ctx.info["labels"] = {s: dict(c) for s, c in counts.items()}
        present = set(df["source"].unique().to_list()) if df.height else set()
        gone = [k for k, v in human.own.items() if v.get("source") in present and k not in seen]
        if gone:
            versions = sorted({str(human.own[k].get("version")) for k in gone})
            ctx.warn(f"{len(gone)} human labels made on an earlier version match no pair of this build (the prompt "
                     f"was not sampled again or an answer changed; labelled on version {', '.join(versions)}): "
                     "`datafactory labels stats` counts them")
        ctx.table(PAIRS_TABLE, pl.DataFrame(table, schema=_table_schema()))
        schema = {c: df.schema[c] for c in ["id", "source", *keep]}
        schema.update({"chosen": pl.String, "rejected": pl.String, "chosen_role": pl.String, "rejected_role": pl.String,
                       "chosen_score": pl.Float64, "rejected_score": pl.Float64, "label_source": pl.String,
                       "llm_calls": pl.List(pl.String)})
        return pl.DataFrame(out, schema=schema)


def _table_schema() -> dict:
    return {"id": pl.String, "source": pl.String, "pair_key": pl.String, "prompt": pl.String, "context": pl.String,
            "turns": messages_type(), "response_a": pl.String, "response_b": pl.String, "role_a": pl.String, "role_b": pl.String,
            "score_a": pl.Float64, "score_b": pl.Float64, "judge": pl.String, "decided_by": pl.String,
            "human": pl.String, "outcome": pl.String}
