"""Rebuild api_v2010_subset.json from Twilio's OpenAPI description.

    python tests/twilio_oai/extract.py path/to/twilio-oai/spec/json/twilio_api_v2010.json

Keeps the 200 answers of the GETs the simulator serves and every schema they
reference, nothing else: the file the schema test reads stays small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The GET paths whose 200 answers the simulator must match.
PATHS = (
    "/2010-04-01/Accounts/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Recordings.json",
    "/2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json",
)
OUT = Path(__file__).with_name("api_v2010_subset.json")


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    answers = {path: spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
               for path in PATHS}  # fmt: skip
    schemas = spec["components"]["schemas"]
    wanted: set[str] = set()
    _refs(answers, wanted)
    done: set[str] = set()
    while wanted - done:
        name = (wanted - done).pop()
        done.add(name)
        _refs(schemas[name], wanted)
    subset = {
        "source": "https://github.com/twilio/twilio-oai spec/json/twilio_api_v2010.json (MIT licence, Twilio Inc.)",
        "version": spec["info"]["version"],
        "paths": answers,
        "components": {"schemas": {name: schemas[name] for name in sorted(done)}},
    }
    OUT.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
