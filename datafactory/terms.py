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


def source_terms(source: Source, spec: SourceSpec) -> dict:
    """The terms of one of a recipe's own sources, recipe overrides first."""
    cls = type(source)
    return {"license": spec.license or cls.license, "license_name": cls.license_name, "license_link": cls.license_link,
            "redistribute": cls.redistribute if spec.redistribute is None else spec.redistribute,
            "content_warning": cls.content_warning}


def collect(own: dict[str, dict], upstream: dict[str, tuple[str, dict]]) -> dict:
    """The dataset's terms: ``restrictions`` (sources that may not be published), ``unverified`` (sources
    whose terms do not say) and ``content_warnings``, from its own sources (name -> ``source_terms``) and its
    upstream datasets (source name -> (``name@version``, upstream manifest))."""
    restrictions, unverified, warnings = [], [], []
    for name, t in own.items():
        entry = {"source": name, "license": t["license"], "license_link": t["license_link"]}
        if t["redistribute"] is False:
            restrictions.append(entry)
        elif t["redistribute"] is None:
            unverified.append(entry)
        if t["content_warning"]:
            warnings.append(t["content_warning"])
    for name, (ref, m) in upstream.items():
        up = m.get("terms", {})
        restrictions += [{**r, "source": f"{name} <- {ref}: {r['source']}"} for r in up.get("restrictions", [])]
        unverified += [{**r, "source": f"{name} <- {ref}: {r['source']}"} for r in up.get("unverified", [])]
        warnings += up.get("content_warnings", [])
    return {"restrictions": restrictions, "unverified": unverified, "content_warnings": list(dict.fromkeys(warnings))}


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

