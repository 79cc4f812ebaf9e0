"""Licences and citation: LICENSE, LICENSE-content, CITATION.cff and the README's citation section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "citation-file-format-1.2.0.schema.json"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _citation() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_license_is_the_mit_licence_that_pyproject_declares():
    project = _pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_content_licence_names_cc_by_and_what_it_covers():
    text = " ".join((ROOT / "LICENSE-content").read_text(encoding="utf-8").split())
    assert "Creative Commons Attribution 4.0 International" in text
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    for covered in ("notebooks/", "data/synthscenes/", "data/checkpoints/", "results/"):
        assert covered in text, f"LICENSE-content does not say whether {covered} is covered"
        assert (ROOT / covered).exists(), f"LICENSE-content names {covered}, which the repository does not have"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "LICENSE-content" in readme and "CC BY 4.0" in readme


def test_citation_cff_is_valid_cff_1_2():
    data = _citation()
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"].endswith("/1.2.0/schema.json")
    jsonschema.validate(data, schema, cls=jsonschema.Draft7Validator,
                        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert data["cff-version"] == "1.2.0"


def test_citation_agrees_with_pyproject():
    data, project = _citation(), _pyproject()["project"]
    assert data["version"] == project["version"]
    assert data["repository-code"] == project["urls"]["Repository"]
    assert "MIT" in data["license"] and "CC-BY-4.0" in data["license"]


def test_citation_references_the_paper():
    (paper,) = [r for r in _citation()["references"] if "RefineNet" in r["title"]]
    assert paper["type"] == "conference-paper"
    assert paper["title"] == "RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic Segmentation"
    assert [a["family-names"] for a in paper["authors"]] == ["Lin", "Milan", "Shen", "Reid"]
    assert paper["year"] == 2017 and "CVPR" in paper["conference"]["name"]
    identifiers = {i["value"] for i in paper["identifiers"]}
    assert "10.48550/arXiv.1611.06612" in identifiers and "https://arxiv.org/abs/1611.06612" in identifiers


def test_readme_says_how_to_cite_the_paper_and_the_course():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Licence and citation"):]
    assert "CITATION.cff" in section
    paper, course = re.findall(r"```bibtex\n(.*?)```", section, re.DOTALL)
    assert "Lin, Guosheng and Milan, Anton and Shen, Chunhua and Reid, Ian" in paper
    assert "1611.06612" in paper and "10.1109/CVPR.2017.549" in paper
    assert _citation()["references"][0]["doi"] == "10.1109/CVPR.2017.549"
    assert _pyproject()["project"]["urls"]["Repository"] in course
    assert _pyproject()["project"]["version"] in course
