"""DSSE envelopes (audit/dsse.py): the spec's PAE, real Ed25519 and ECDSA keys, tampering caught."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from buildgraph.audit import dsse
from buildgraph.errors import UsageError

PAYLOAD = json.dumps({"_type": "https://in-toto.io/Statement/v1"}).encode()


def test_pae_is_the_specs_encoding() -> None:
    """The test vector of the DSSE spec (protocol.md)."""
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def ecdsa_key(path: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(private)
    path.with_suffix(".pub").write_bytes(public)
    return path, path.with_suffix(".pub")


@pytest.fixture(params=["ed25519", "ecdsa"])
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    if request.param == "ed25519":
        return tmp_path / "k.pem", dsse.new_key(tmp_path / "k.pem")
    return ecdsa_key(tmp_path / "k.pem")


def test_a_signed_envelope_verifies_and_gives_back_its_payload(keys: tuple[Path, Path]) -> None:
    private, public = keys
    envelope = dsse.sign(PAYLOAD, private)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == PAYLOAD
    assert dsse.verify(envelope, public) == PAYLOAD
    assert dsse.verify(envelope, private) == PAYLOAD  # a private key file stands for its public half


def test_a_changed_payload_does_not_verify(keys: tuple[Path, Path]) -> None:
    private, public = keys
    envelope = dsse.sign(PAYLOAD, private)
    envelope["payload"] = base64.b64encode(PAYLOAD.replace(b"v1", b"v2")).decode()
    with pytest.raises(dsse.BadSignature, match="does not verify") as caught:
        dsse.verify(envelope, public)
    assert caught.value.exit_status == 1


def test_another_payload_type_does_not_verify(keys: tuple[Path, Path]) -> None:
    private, public = keys
    envelope = dsse.sign(PAYLOAD, private, payload_type="text/plain")
    with pytest.raises(dsse.BadSignature, match="payloadType is 'text/plain'"):
        dsse.verify(envelope, public)


def test_an_envelope_signed_by_another_key_says_so(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine, theirs = tmp_path / "a/k.pem", tmp_path / "b/k.pem"
    dsse.new_key(mine)
    their_public = dsse.new_key(theirs)
    with pytest.raises(dsse.BadSignature, match="signed by another key"):
        dsse.verify(dsse.sign(PAYLOAD, mine), their_public)


def test_new_key_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    public = dsse.new_key(tmp_path / "key.pem")
    assert public == tmp_path / "key.pub.pem"
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError, match="already exists"):
        dsse.new_key(tmp_path / "key.pem")


def test_a_file_that_is_no_key_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("not a key\n")
    with pytest.raises(UsageError, match="not a PEM private key"):
        dsse.sign(PAYLOAD, tmp_path / "k.pem")
