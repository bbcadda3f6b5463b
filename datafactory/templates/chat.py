"""Conversations and chat templates: one rendering of a conversation, in polars (fast, the ``template`` step) and as a
Jinja chat template (what a tokenizer, vLLM or ``transformers serve`` applies), byte for byte the same.

A conversation is a list of ``{role, content}`` messages (``user``, ``assistant``, ``system``). A KULLM-shaped text
template (``prompt_input``/``prompt_no_input``, see ``templates/__init__.py``) renders one as the seed's prompt: the
last user message is the instruction, and the messages before it go, one line each (``사용자: ...``,
``어시스턴트: ...``), into the ``### 입력:`` slot; a conversation of one message takes ``prompt_no_input``. An answer
after that user message follows the prompt, with the tokenizer's EOS (what SFT trains on). ``chat_template`` writes
that rendering as Jinja, so a model trained on it carries exactly its training format (``trainers/sft.py`` saves it
as the tokenizer's ``chat_template``); ``render`` applies any chat template as ``transformers`` does (the same Jinja
environment: a sandbox, ``trim_blocks``, ``lstrip_blocks``, ``raise_exception``, ``tojson``, ``{% generation %}``).
"""
from __future__ import annotations

import functools
import json
import string
from pathlib import Path

from datafactory.errors import DataFactoryError

ROLE_LABELS = {"user": "사용자", "assistant": "어시스턴트", "system": "시스템"}
ROLES = tuple(ROLE_LABELS)


def history_text(turns) -> str:
    """The turns before the instruction as the ``### 입력:`` slot holds them: ``<label>: <content>`` lines."""
    return "\n".join(f"{ROLE_LABELS.get(t['role'], t['role'])}: {t['content']}" for t in turns or ())


def history_expr(column: str):
    """``history_text`` of a list-of-``{role, content}`` column, as a polars expression ("" for none or null)."""
    import polars as pl

    label = pl.element().struct.field("role").replace(ROLE_LABELS)
    line = label + pl.lit(": ") + pl.element().struct.field("content")
    return pl.col(column).list.eval(line).list.join("\n").fill_null("")


def _literal(text: str) -> str:
    """A Jinja string literal (JSON's escapes are Python's, which Jinja's lexer reads)."""
    return json.dumps(text, ensure_ascii=False)


def _jinja_concat(fmt: str, fields: dict[str, str]) -> str:
    """A template string's ``{field}``s as a Jinja expression that concatenates literals and variables."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(fmt):
        if literal:
            parts.append(_literal(literal))
        if field is not None:
            if field not in fields:
                raise DataFactoryError(f"the template's field {{{field}}} has no place in a conversation (only "
                                       "{instruction} and {input}); give a chat template instead")
            parts.append(fields[field])
    return " + ".join(parts) or '""'


def chat_template(tpl: dict, training: bool = False) -> str:
    """The Jinja chat template of a KULLM-shaped text template. ``training`` marks the answer with ``{% generation
    %}`` (TRL's ``assistant_only_loss`` needs it; a server does not know the tag, so the saved template has none)."""
    fields = {"instruction": "instruction", "input": "ns.history"}
    labels = "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in ROLE_LABELS.items()) + "}"
    answer = "{{- messages[ns.last + 1]['content'] + eos_token -}}"
    if training:
        answer = "{%- generation -%}" + answer + "{%- endgeneration -%}"
    lines = [
        "{#- datafactory: " + _literal(tpl.get("description", "a text template"))[1:-1] + " as a chat template. The last "
        "user message is the instruction; the messages before it are the input, a line each; an assistant message "
        "after it is the answer, ended by the EOS. -#}",
        "{%- set ns = namespace(last=-1, history='') -%}",
        "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}",
        "{%- if ns.last < 0 -%}{{- raise_exception('this chat template needs a user message') -}}{%- endif -%}",
        f"{{%- set labels = {labels} -%}}",
        "{%- for m in messages[:ns.last] -%}{%- set ns.history = ns.history + ('\\n' if loop.index0 else '') + "
        "labels.get(m['role'], m['role']) + ': ' + m['content'] -%}{%- endfor -%}",
        "{%- set instruction = messages[ns.last]['content'] -%}",
        "{%- if ns.history -%}",
        "{{- " + _jinja_concat(tpl["prompt_input"], fields) + " -}}",
        "{%- else -%}",
        "{{- " + _jinja_concat(tpl["prompt_no_input"], fields) + " -}}",
        "{%- endif -%}",
        "{%- if messages | length > ns.last + 1 and messages[ns.last + 1]['role'] == 'assistant' -%}",
        answer,
        "{%- endif -%}",
    ]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=16)
def _compiled(template: str):
    """``template`` compiled in the environment ``transformers`` renders chat templates in."""
    try:
        import jinja2
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 is a dependency
        raise DataFactoryError("rendering a chat template needs jinja2: pip install 'jinja2>=3.1.6'") from None

    class Generation(Extension):  # `{% generation %}...{% endgeneration %}`: the text as it is (transformers tracks it)
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_same"), [], [], body).set_lineno(lineno)

        def _same(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise DataFactoryError(f"the chat template does not parse: {e} (line {e.lineno})") from None


def render(template: str, messages: list[dict], *, add_generation_prompt: bool = True, eos_token: str = "",
           bos_token: str = "") -> str:
    """``messages`` rendered by a Jinja chat template, as ``tokenizer.apply_chat_template(..., tokenize=False)``."""
    import jinja2

    try:
        return _compiled(template).render(messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt,
                                          eos_token=eos_token, bos_token=bos_token)
    except jinja2.exceptions.TemplateError as e:
        raise DataFactoryError(f"the chat template failed on a conversation: {e}") from None


def load_chat_template(ref: str, base_dir: Path | None = None) -> tuple[str, str]:
    """A chat template's (Jinja text, where it came from): a shipped text template's name (``kullm``: its chat
    template), a ``.jinja`` file, a JSON text template file, or a model folder (its ``chat_template.jinja``, or the
    ``chat_template`` of its ``tokenizer_config.json``)."""
    from datafactory.templates import TEMPLATE_DIR, available, load_template

    if ref in available():
        return chat_template(load_template(ref)), f"shipped:{ref}"
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.is_dir():
        jinja = path / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text("utf-8"), str(jinja)
        config = path / "tokenizer_config.json"
        try:
            found = json.loads(config.read_text("utf-8")).get("chat_template")
        except (OSError, ValueError):
            found = None
        if isinstance(found, list):  # named templates: the default one
            found = next((t.get("template") for t in found if isinstance(t, dict) and t.get("name") == "default"), None)
        if not isinstance(found, str):
            raise DataFactoryError(f"{path}: the folder has no chat template (no chat_template.jinja, no chat_template "
                                   "in tokenizer_config.json); name a template (kullm) or a .jinja file instead")
        return found, str(config)
    if path.suffix == ".json":
        return chat_template(load_template(str(path))), str(path)
    if not path.is_file():
        shipped = ", ".join(available())
        raise DataFactoryError(f"chat template '{ref}': neither a shipped template ({shipped}), a .jinja file nor a model "
                               f"folder (looked for {path}; shipped ones are in {TEMPLATE_DIR})")
    return path.read_text("utf-8"), str(path)
