"""The simulator's JSON, held to the schemas of Twilio's OpenAPI description (tests/twilio_oai).

Every body the simulator serves on the REST endpoints the service uses is
validated against the 200 answer Twilio documents for that endpoint. The
schemas are tightened the way Twilio's answers are: every documented field is
present (null when empty) and no other field is, so a renamed field, a
missing one or a changed type fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulator.app import create_app

SPEC = json.loads((Path(__file__).parent / "twilio_oai" / "api_v2010_subset.json").read_text())
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "openapi-test-token"
BASIC = {"Authorization": "Basic " + __import__("base64").b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
BASE = f"/2010-04-01/Accounts/{ACCOUNT_SID}"


def _strict(node):
    """OpenAPI 3.0 to JSON Schema: ``nullable`` as a null type; objects with all their fields and no others."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items() if key not in ("nullable", "description", "examples")}
    if node.get("nullable"):
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        elif "type" in out:
            out["type"] = [out["type"], "null"]
        else:  # no type at all (encryption_details): anything, null included
            pass
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if out.get("type") == "object" and "properties" in out:
        out["required"] = sorted(out["properties"])
        out["additionalProperties"] = False
    return out


COMPONENTS = _strict(SPEC["components"])


def validator(path: str) -> jsonschema.Draft7Validator:
    """The validator of the 200 answer Twilio documents for ``path`` (its OpenAPI path template)."""
    schema = {**_strict(SPEC["paths"][path]), "components": COMPONENTS}
    return jsonschema.Draft7Validator(schema)


def check(path: str, body: dict) -> None:
    errors = sorted(validator(path).iter_errors(body), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.fixture
def client():
    return create_app(ACCOUNT_SID, AUTH_TOKEN).test_client()


@pytest.fixture
def calls(client) -> list[dict]:
    """One call of every kind the simulator makes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_sid = client.post("/_sim/keys", json={"public_key_pem": pem}).json["public_key_sid"]
    kinds = [
        {},
        {"child": True},
        {"conference": True},
        {"channels": 1},
        {"status": "absent"},
        {"status": "failed"},
        {"ready_after": 3},  # still processing
        {"encrypted": key_sid},
        {"recordings": 3},
    ]
    made = [client.post("/_sim/calls", json={"size": 4096, **kind}) for kind in kinds]
    assert [reply.status_code for reply in made] == [201] * len(kinds)
    return [reply.json for reply in made]


def test_every_recording_and_list_matches_twilios_schema(client, calls):
    listed = client.get(f"{BASE}/Recordings.json?PageSize=5", headers=BASIC)
    check("/2010-04-01/Accounts/{AccountSid}/Recordings.json", listed.json)
    next_page = client.get(listed.json["next_page_uri"], headers=BASIC)
    check("/2010-04-01/Accounts/{AccountSid}/Recordings.json", next_page.json)
    conference = next(call["conference_sid"] for call in calls if call["conference_sid"])
    by_conference = client.get(f"{BASE}/Recordings.json?ConferenceSid={conference}", headers=BASIC)
    check("/2010-04-01/Accounts/{AccountSid}/Recordings.json", by_conference.json)
    for call in calls:
        for sid in call["recording_sids"]:
            fetched = client.get(f"{BASE}/Recordings/{sid}.json", headers=BASIC)
            check("/2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json", fetched.json)


def test_every_call_and_its_recordings_match_twilios_schema(client, calls):
    check("/2010-04-01/Accounts/{AccountSid}/Calls.json", client.get(f"{BASE}/Calls.json", headers=BASIC).json)
    for call in calls:
        for sid in filter(None, (call["call_sid"], call["child_call_sid"])):
            check("/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
                  client.get(f"{BASE}/Calls/{sid}.json", headers=BASIC).json)  # fmt: skip
            check("/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json",
                  client.get(f"{BASE}/Calls/{sid}/Recordings.json", headers=BASIC).json)  # fmt: skip


def test_the_account_matches_twilios_schema(client):
    check("/2010-04-01/Accounts/{Sid}.json", client.get(f"{BASE}.json", headers=BASIC).json)


def test_a_renamed_field_or_a_changed_type_fails(client, calls):
    good = client.get(f"{BASE}/Recordings/{calls[0]['recording_sid']}.json", headers=BASIC).json
    path = "/2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.json"
    check(path, good)
    renamed = copy.deepcopy(good)
    renamed["recording_channels"] = renamed.pop("channels")
    retyped = {**good, "duration": int(good["duration"])}
    for broken in (renamed, retyped, {**good, "status": "done"}):
        assert list(validator(path).iter_errors(broken))
