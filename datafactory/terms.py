"""Licences and what they allow: recorded in the manifest at build time, enforced by ``push``, shown on the card.

Each source kind states its corpus terms (``Source.license``, ``license_name``, ``license_link``), whether its
text may be published (``redistribute``: NIKL and AIHub forbid it; ``None`` when the terms do not say) and a
content warning (AIHub's hate speech). A recipe may override ``license`` and ``redistribute`` per source.
A dataset built from another dataset inherits its restrictions and warnings, so nothing is laundered by a
second recipe.
"""
from __future__ import annotations

from datafactory.recipe import SourceSpec
from datafactory.sources.base import Source

MIXED_LICENSE_NAME = "datafactory-source-terms"
REDISTRIBUTION = {True: "allowed", False: "not allowed", None: "not stated"}  # a source's `redistribute`, in words


def source_terms(source: Source, spec: SourceSpec, path=None, samples_dir=None) -> dict:
    """The terms of one of a recipe's own sources, recipe overrides first; ``sample``: it reads (at ``path``) the
    samples shipped with datafactory (``samples_dir``), written by its team in the corpora's formats."""
    cls = type(source)
    return {"license": spec.license or cls.license, "license_name": cls.license_name, "license_link": cls.license_link,
            "redistribute": cls.redistribute if spec.redistribute is None else spec.redistribute,
            "content_warning": cls.content_warning, "sample": _inside(path, samples_dir)}


def _inside(path, folder) -> bool:
    from pathlib import Path

    if path is None or folder is None:
        return False
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False


def collect(own: dict[str, dict], upstream: dict[str, tuple[str, dict]],
            present: dict[str, set | None] | None = None) -> dict:
    """The dataset's terms: ``restrictions`` (sources that may not be published), ``unverified`` (sources
    whose terms do not say), ``content_warnings`` (and ``warned``: which source each comes from) and ``samples``
    (sources read from the shipped samples), from its own sources (name -> ``source_terms``) and its upstream
    datasets (source name -> (``name@version``, upstream manifest)).

    They follow the rows the version holds: ``present`` maps each source with rows in it to the upstream sources
    those rows came from (their ``upstream_source``; None for a source of its own), so a source a step filtered
    out entirely, or an upstream source none of whose rows reached this version, adds no restriction, warning or
    sample note (rm_v3 takes sft_v2's daily rows only: sft_v2's hate speech is not in it)."""
    restrictions, unverified, warned, samples = [], [], [], []
    for name, t in own.items():
        if present is not None and name not in present:
            continue
        entry = {"source": name, "license": t["license"], "license_link": t["license_link"]}
        if t["redistribute"] is False:
            restrictions.append(entry)
        elif t["redistribute"] is None:
            unverified.append(entry)
        if t["content_warning"]:
            warned.append({"source": name, "warning": t["content_warning"]})
        if t.get("sample"):
            samples.append(name)
    for name, (ref, m) in upstream.items():
        if present is not None and name not in present:
            continue
        up = m.get("terms", {})
        kept = present.get(name) if present is not None else None

        def held(source: str) -> bool:  # an upstream entry names its source first ("daily", "sft <- ...: hate")
            return kept is None or source.split(" <- ")[0] in kept

        via = lambda r: {**r, "source": f"{name} <- {ref}: {r['source']}"}  # noqa: E731
        restrictions += [via(r) for r in up.get("restrictions", []) if held(r["source"])]
        unverified += [via(r) for r in up.get("unverified", []) if held(r["source"])]
        if "warned" in up:
            warned += [via(w) for w in up["warned"] if held(w["source"])]
        else:  # a manifest from before warnings named their sources: all of them
            warned += [{"source": f"{name} <- {ref}", "warning": w} for w in up.get("content_warnings", [])]
        samples += [f"{name} <- {ref}: {x}" for x in up.get("samples", []) if held(x)]
    return {"restrictions": restrictions, "unverified": unverified,
            "content_warnings": list(dict.fromkeys(w["warning"] for w in warned)), "warned": warned,
            "samples": samples}


def card_license(manifest: dict) -> dict:
    """``license``, and with ``license: other`` the HF spec's ``license_name`` and ``license_link``."""
    card = manifest["recipe"]["card"]
    out = {"license": card["license"]}
    if card["license"] != "other":
        return out
    names = list(dict.fromkeys(s.get("license_name") for s in manifest["sources"].values() if s.get("license_name")))
    out["license_name"] = card.get("license_name") or (names[0] if len(names) == 1 and len(manifest["sources"]) == 1
                                                        else MIXED_LICENSE_NAME)
    out["license_link"] = card.get("license_link") or "LICENSE.md"
    return out


def render_license(manifest: dict) -> str:
    """LICENSE.md beside the card: every source's terms, and what may not be published."""
    terms = manifest.get("terms", {})
    lines = [f"# Terms of {manifest['name']}@{manifest['version']}", "",
             "This dataset was built by datafactory from the sources below. Its rows are derived from their text, "
             "so each source's terms apply to the rows that came from it (the `source` column says which).", ""]
    for name, s in manifest["sources"].items():
        allowed = REDISTRIBUTION[s.get("redistribute")]
        allowed = {"not allowed": "**not allowed**", "not stated": "not stated: check the terms"}.get(allowed, allowed)
        link = f" <{s['license_link']}>" if s.get("license_link") else ""
        lines.append(f"- `{name}` ({s['kind']}): {s.get('license') or 'see the source'}{link}. Redistribution: {allowed}.")
    for r in terms.get("restrictions", []):
        if " <- " in r["source"]:
            lines.append(f"- `{r['source']}` (upstream): {r['license']}. Redistribution: **not allowed**.")
    if terms.get("restrictions"):
        lines += ["", "Sources whose terms forbid redistribution are in this dataset: share it only as their terms "
                  "allow (e.g. a private repository for the people licensed to use them)."]
    return "\n".join(lines) + "\n"

