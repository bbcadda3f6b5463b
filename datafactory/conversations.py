"""Conversations as a column type: a list of ``{role, content}`` messages (``list<struct<role, content>>`` in Arrow,
``List({"role": Value("string"), "content": Value("string")})`` in ``datasets``), as TRL's conversational dataset
types hold them.

Inside a build a row's conversation is its ``history`` (the turns before its last user turn, from the source) and
its ``instruction`` (that turn); its answers are text (``output``, ``completion``, ``chosen``/``rejected``). An
output of ``type: conversational`` turns them into TRL's conversational columns when the version is published:

    format      standard (text)               conversational
    text        text                          messages: the conversation and its answer
    sft         prompt, completion            prompt: the conversation, completion: [the answer]
    preference  prompt, chosen, rejected      prompt: the conversation, chosen/rejected: [an answer each]
    prompt      prompt                        prompt: the conversation

A column that already holds messages (a ``files`` source's own ``prompt``) is taken as it is. The trainers apply
the model's chat template to these rows (``trainers/sft.py`` saves the one it trained with).
"""
from __future__ import annotations

import polars as pl

from datafactory.errors import RecipeError

ROLES = ("system", "user", "assistant")


def messages_type():
    return pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def is_messages(dtype) -> bool:
    """A list of ``{role, content}`` structs: a conversation column."""
    return (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)
            and {f.name for f in dtype.inner.fields} >= {"role", "content"})


def message_columns(df: pl.DataFrame) -> list[str]:
    return [c for c, t in df.schema.items() if is_messages(t)]


def map_contents(s: pl.Series, change) -> pl.Series:
    """``s`` (a conversation column) with ``change`` applied to the Series of all its messages' contents."""
    import pyarrow as pa

    flat = s.explode(empty_as_null=False, keep_nulls=False)
    if flat.len() == 0:
        return s
    contents = change(flat.struct.field("content"))
    messages = flat.to_frame().select(pl.col(s.name).struct.with_fields(content=contents)).to_series()
    arrow = s.to_arrow()
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    offsets = arrow.offsets if arrow.offset == 0 else pa.compute.subtract(arrow.offsets, arrow.offsets[0])
    rebuilt = pa.ListArray.from_arrays(offsets, messages.to_arrow(), mask=arrow.is_null())
    return pl.Series(s.name, rebuilt, dtype=s.dtype)


def is_conversation(value) -> bool:
    """A Python value that is a conversation: a non-empty list of ``{role, content}`` dicts."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m and "content" in m
                                                           for m in value)


def transcript(messages, width: int = 300, indent: str = "") -> str:
    """A conversation a line a message, ``role: content``, a long content cut at ``width`` and its newlines shown
    as ``⏎`` (how the card's examples, ``show`` and ``trace`` print one)."""
    def short(text: str) -> str:
        text = (text or "").replace("\n", " ⏎ ")
        return text if len(text) <= width else text[:width] + "…"

    return "\n".join(f"{indent}{m['role']}: {short(m['content'])}" for m in messages or ())


def row_lines(row: dict, width: int = 160, texts: tuple[str, ...] = ()) -> str:
    """A row for a terminal: its id, then each text on a line of its own (``name: text``, newlines shown as ⏎, cut
    at ``width``; ``texts`` always so), each conversation a line a message, and the short values together on one
    line."""
    import json

    def short(v) -> str:
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        text = text.replace("\n", " ⏎ ")
        return text if len(text) <= width else text[:width] + "…"

    head = [f"{row.get('id')}" + (f"  (source {row['source']})" if row.get("source") else "")]
    small, lines = [], []
    for k, v in row.items():
        if k in ("id", "source"):
            continue
        if is_conversation(v):
            lines += [f"  {k}:", transcript(v, width, indent="    ")]
        elif isinstance(v, str) and (k in texts or len(v) > 40 or "\n" in v):
            lines.append(f"  {k}: {short(v)}")
        else:
            small.append(f"{k}={short(v)}")
    if small:
        lines.append("  " + " · ".join(small))
    return "\n".join(head + lines)


def readable(row: dict, width: int = 1000, skip: tuple[str, ...] = ()) -> str:
    """A row as text: its plain fields as one JSON line, then each conversation in it as a transcript."""
    import json

    chats = {k: v for k, v in row.items() if is_conversation(v) and k not in skip}
    plain = json.dumps({k: v for k, v in row.items() if k not in chats and k not in skip}, ensure_ascii=False,
                       default=str)
    lines = [plain if len(plain) <= width else plain[:width] + "…"]
    for k, v in chats.items():
        lines.append(f"  {k}:")
        lines.append(transcript(v, indent="    "))
    return "\n".join(lines)


# the columns each format's conversational type holds, and the role of the messages of its answer columns
CONVERSATIONAL = {"text": ("messages",), "sft": ("prompt", "completion"), "preference": ("prompt", "chosen", "rejected"),
                  "prompt": ("prompt",)}
ANSWERS = ("completion", "chosen", "rejected")


def _answer(column: str) -> pl.Expr:
    return pl.concat_list(pl.struct(pl.lit("assistant").alias("role"), pl.col(column).alias("content"))).alias(column)


def _prompt(frame: pl.DataFrame, where: str, name: str = "prompt") -> pl.Expr:
    """The conversation before the answer: ``history`` (when the rows have it) and the ``instruction``."""
    if "instruction" not in frame.columns:
        raise RecipeError(where, "output.type", f"a conversational output builds '{name}' from the rows' "
                          f"'instruction' (the last user turn) and 'history' (the turns before it); there is no "
                          f"'instruction' (columns: {', '.join(frame.columns)})", "keep it with `select`")
    user = pl.concat_list(pl.struct(pl.lit("user").alias("role"), pl.col("instruction").cast(pl.String).alias("content")))
    if "history" in frame.columns and is_messages(frame.schema["history"]):
        turns = pl.col("history").fill_null(pl.lit([], dtype=messages_type()))
        return pl.concat_list(turns.cast(messages_type()), user).alias(name)
    return user.alias(name)


def to_conversational(frame: pl.DataFrame, fmt: str, where: str) -> pl.DataFrame:
    """``frame`` with the conversational columns of ``fmt`` built from its text columns (where they are not messages
    already); the ``history`` and ``instruction`` they were built from go."""
    used: set[str] = set()
    out = []
    for c in CONVERSATIONAL[fmt]:
        if c in frame.columns and is_messages(frame.schema[c]):
            continue
        if c == "prompt" and c in frame.columns and frame.schema[c] == pl.String:
            raise RecipeError(where, "output.type", "'prompt' holds rendered text (a `template` step), and a "
                              "conversational output holds the conversation itself: the trainer applies the model's "
                              "chat template", "leave the template step out of a conversational recipe")
        if c == "prompt":
            out.append(_prompt(frame, where))
            used |= {"history", "instruction"}
        elif c == "messages":
            answer = next((a for a in ("completion", "output") if a in frame.columns), None)
            if answer is None:
                raise RecipeError(where, "output.type", "a conversational text output builds 'messages' from the "
                                  "conversation and its answer ('completion' or 'output'); there is neither")
            out.append(pl.concat_list(_prompt(frame, where, "messages"), _answer(answer)).alias("messages"))
            used |= {"history", "instruction", answer}
        else:
            if c not in frame.columns:
                continue  # the format check names it
            if frame.schema[c] != pl.String:
                raise RecipeError(where, "output.type", f"column '{c}' is {frame.schema[c]}, not text or messages")
            out.append(_answer(c))
    if not out:
        return frame
    return frame.with_columns(out).drop([c for c in used if c in frame.columns and c not in CONVERSATIONAL[fmt]])


def check(frame: pl.DataFrame, columns: tuple[str, ...], where: str) -> None:
    """Each conversational column: messages with a known role and some text; a prompt ends with the user's turn;
    an answer is one assistant message; a conversation holds a user turn and ends with the assistant's answer."""
    for c in columns:
        if not is_messages(frame.schema[c]):
            raise RecipeError(where, "output.type", f"column '{c}' is {frame.schema[c]}, not a list of messages")
        flat = frame.select("id", pl.col(c).alias("m")).with_columns(pl.col("m").list.len().alias("n"))
        empty = flat.filter(pl.col("n").fill_null(0) == 0)
        if empty.height:
            raise RecipeError(where, "output.format", f"{empty.height} rows have no messages in '{c}' (first: id "
                              f"'{empty['id'][0]}')")
        msgs = flat.explode("m").unnest("m")
        bad = msgs.filter(~pl.col("role").is_in(ROLES) | pl.col("role").is_null())
        if bad.height:
            raise RecipeError(where, "output.format", f"row '{bad['id'][0]}': a message in '{c}' has role "
                              f"{bad['role'][0]!r}; roles are {', '.join(ROLES)}")
        blank = msgs.filter(pl.col("content").is_null() | pl.col("content").str.contains(r"^\s*$"))
        if blank.height:
            raise RecipeError(where, "output.format", f"{blank.select('id').n_unique()} rows have a message without "
                              f"text in '{c}' (first: id '{blank['id'][0]}')",
                              "filter empty turns out before (`filter: {length: ...}`)")
        last = frame.select("id", pl.col(c).list.last().struct.field("role").alias("r"),
                            pl.col(c).list.len().alias("n"))
        if c == "prompt":
            wrong = last.filter(pl.col("r") != "user")
            what = "end with the user's turn"
        elif c in ANSWERS:
            wrong = last.filter((pl.col("r") != "assistant") | (pl.col("n") != 1))
            what = "be one assistant message"
        else:  # messages
            users = frame.select("id", pl.col(c).list.eval(pl.element().struct.field("role") == "user").list.any()
                                 .alias("u"))
            wrong = last.filter(pl.col("r") != "assistant").vstack(
                last.filter(~users["u"].fill_null(False)))
            what = "hold a user turn and end with the assistant's answer"
        if wrong.height:
            raise RecipeError(where, "output.format", f"{wrong.height} rows' '{c}' does not {what} (first: id "
                              f"'{wrong['id'][0]}')")


def from_conversational(frame: pl.DataFrame) -> pl.DataFrame:
    """A conversational version's rows as the columns steps work on: its ``prompt`` (or ``messages``) as ``history``
    and ``instruction`` (the last user turn), an answer of one assistant message (``completion``, ``chosen``,
    ``rejected``; a ``messages`` conversation's last turn as ``output``) as its text."""
    whole = "messages" if is_messages(frame.schema.get("messages")) else None
    conv = whole or ("prompt" if is_messages(frame.schema.get("prompt")) else None)
    if conv is None:
        return frame
    content = pl.element().struct.field("content")
    turns = pl.col(conv).list.head(pl.col(conv).list.len() - 1) if whole else pl.col(conv)
    last_user = turns.list.last().struct.field("content")
    out = [turns.list.head(turns.list.len() - 1).alias("history"), last_user.alias("instruction")]
    if whole:
        out.append(pl.col(conv).list.last().struct.field("content").alias("output"))
    for c in ANSWERS:
        if is_messages(frame.schema.get(c)):
            out.append(pl.col(c).list.eval(content).list.last().alias(c))
    return frame.with_columns(out).drop(conv)
