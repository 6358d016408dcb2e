"""The AsyncAPI document: every event with its schema, an example that the catalogue itself
decodes, its stream, the CloudEvents headers; and valid by the AsyncAPI Initiative's parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from tessera_events import all_event_types
from tessera_events.asyncapi import build_document
from tessera_events.catalogue import STREAMS

PARSER_DIR = Path(__file__).parent / "asyncapi"


def test_every_message_has_an_example_the_catalogue_decodes():
    document = build_document()
    for entry in all_event_types():
        message = document["components"]["messages"][f"{entry.type}.v{entry.version}"]
        (example,) = message["examples"]
        assert example["headers"]["ce-type"] == entry.type
        assert example["payload"]["type"] == entry.type and example["payload"]["version"] == entry.version
        msgspec.convert(example["payload"]["data"], entry.data)  # raises if the example is wrong
        channel = document["channels"][entry.type]
        assert channel["x-tessera-stream"] == STREAMS[entry.service].name
        assert "ce-specversion" in message["headers"]["properties"]


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    """@asyncapi/parser, installed with npm beside validate.mjs on first use (about 30 s)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to run the AsyncAPI parser")
    if not (PARSER_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--no-package-lock"],
                       cwd=PARSER_DIR, check=True, timeout=300)
    return PARSER_DIR / "validate.mjs"


def test_the_document_is_valid_asyncapi(asyncapi_parser, tmp_path):
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(build_document()))
    result = subprocess.run(["node", str(asyncapi_parser), str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout


def test_the_parser_rejects_a_broken_document(asyncapi_parser, tmp_path):
    """So the check above can fail: a channel referring to a message that does not exist."""
    document = build_document()
    channel = next(iter(document["channels"].values()))
    channel["messages"]["ghost"] = {"$ref": "#/components/messages/ghost"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    result = subprocess.run(["node", str(asyncapi_parser), str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stdout
