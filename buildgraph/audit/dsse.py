"""DSSE envelopes: a provenance statement signed with a local key, and the check of one.

    {"payloadType": "application/vnd.in-toto+json", "payload": base64(statement bytes),
     "signatures": [{"keyid": sha256 hex of the public key (DER SubjectPublicKeyInfo), "sig": base64}]}

The signature is over PAE(payloadType, payload), as the DSSE spec (v1.0) says:
`"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes. Keys are
PEM files: Ed25519, or ECDSA on P-256/P-384/P-521 (SHA-256/384/512, DER signatures, as
sigstore writes them). `bg provenance --new-key PATH` makes an Ed25519 pair; so does
`openssl genpkey -algorithm ed25519 -out key.pem && openssl pkey -in key.pem -pubout -out key.pub.pem`.

The `cryptography` package does the arithmetic; it is the `sign` extra, imported only here,
because most projects never sign and it is a compiled wheel bg otherwise does without.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from buildgraph.errors import BgError, EnvironmentProblem, UsageError

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class BadSignature(BgError):
    """An envelope that does not verify (exit 1), and why."""

    exit_status = 1


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, binding the type to the payload."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, key_file: Path, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """An envelope of `payload` signed with the private key in `key_file`."""
    key = _private_key(key_file)
    signature = _sign(key, pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


def verify(envelope: Any, key_file: Path, what: str = "envelope") -> bytes:
    """The payload of `envelope` when one of its signatures verifies with the public key in
    `key_file` (a private key file does too: its public half is used); BadSignature naming why
    otherwise."""
    public = _public_key(key_file)
    payload_type, payload, signatures = _parts(envelope, what)
    if payload_type != PAYLOAD_TYPE:
        raise BadSignature(f"{what}: payloadType is {payload_type!r}, not {PAYLOAD_TYPE!r}")
    ours = keyid(public)
    message = pae(payload_type, payload)
    for entry in signatures:
        if entry.get("keyid") not in (None, "", ours):
            continue
        if _verifies(public, _b64(entry.get("sig"), f"{what}: a signature"), message):
            return payload
    if not any(entry.get("keyid") in (None, "", ours) for entry in signatures):
        listed = ", ".join(str(e.get("keyid", ""))[:12] for e in signatures)
        raise BadSignature(f"{what}: signed by another key ({listed}), not {key_file} ({ours[:12]})")
    raise BadSignature(
        f"{what}: the signature does not verify with {key_file} (the payload or the signature was changed)"
    )


def new_key(path: Path) -> Path:
    """A new Ed25519 key pair: the private key at `path` (mode 0600), the public key beside it
    (`path` with `.pub` before its suffix: key.pem → key.pub.pem). Returns the public key's path."""
    ed25519 = _crypto("hazmat.primitives.asymmetric.ed25519")
    serialization = _crypto("hazmat.primitives.serialization")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_path = path.with_name(f"{path.stem}.pub{path.suffix or '.pem'}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    except FileExistsError:
        raise UsageError(f"{path}: already exists", hint="bg never overwrites a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    pem, spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    public_path.write_bytes(key.public_key().public_bytes(pem, spki))
    return public_path


def keyid(public: Any) -> str:
    """sha256 hex of the public key's DER SubjectPublicKeyInfo: the same for its PEM anywhere."""
    serialization = _crypto("hazmat.primitives.serialization")
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------- keys
def _private_key(key_file: Path) -> Any:
    serialization = _crypto("hazmat.primitives.serialization")
    data = _read(key_file)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"{key_file}: the key is encrypted", hint="bg signs with unencrypted keys") from None
    except ValueError:
        raise UsageError(f"{key_file}: not a PEM private key", hint=_KEY_HINT) from None
    _check_kind(key, key_file)
    return key


def _public_key(key_file: Path) -> Any:
    serialization = _crypto("hazmat.primitives.serialization")
    data = _read(key_file)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = _private_key(key_file).public_key()
    _check_kind(key, key_file)
    return key


_KEY_HINT = "make one with `bg provenance --new-key KEY.pem` (Ed25519), or use an ECDSA key"


def _check_kind(key: Any, key_file: Path) -> None:
    ec = _crypto("hazmat.primitives.asymmetric.ec")
    ed25519 = _crypto("hazmat.primitives.asymmetric.ed25519")
    kinds: tuple[Any, ...] = (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)
    kinds += (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)
    if not isinstance(key, kinds):
        kind = type(key).__name__.lstrip("_")
        raise UsageError(f"{key_file}: a {kind}, not an Ed25519 or ECDSA key", _KEY_HINT)


def _read(key_file: Path) -> bytes:
    try:
        return key_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{key_file}: {exc.strerror or exc}") from None


def _sign(key: Any, message: bytes) -> bytes:
    ec = _crypto("hazmat.primitives.asymmetric.ec")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return bytes(key.sign(message, ec.ECDSA(_curve_hash(key.curve))))
    return bytes(key.sign(message))


def _verifies(public: Any, signature: bytes, message: bytes) -> bool:
    ec = _crypto("hazmat.primitives.asymmetric.ec")
    exceptions = _crypto("exceptions")
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(_curve_hash(public.curve)))
        else:
            public.verify(signature, message)
    except exceptions.InvalidSignature:
        return False
    return True


def _curve_hash(curve: Any) -> Any:
    hashes = _crypto("hazmat.primitives.hashes")
    size = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 512}.get(curve.name)
    if size is None:
        raise UsageError(f"ECDSA on {curve.name} is not supported", hint="use P-256, P-384, P-521 or Ed25519")
    return {256: hashes.SHA256, 384: hashes.SHA384, 512: hashes.SHA512}[size]()


def _crypto(module: str) -> Any:
    """A module of the `cryptography` package (the `sign` extra), imported when signing."""
    import importlib

    try:
        return importlib.import_module(f"cryptography.{module}")
    except ImportError:
        raise EnvironmentProblem(
            "signing provenance needs the `cryptography` package", hint="pip install 'buildgraph[sign]'"
        ) from None


# ---------------------------------------------------------------- envelopes
def _parts(envelope: Any, what: str) -> tuple[str, bytes, list[dict[str, Any]]]:
    if not isinstance(envelope, dict):
        raise BadSignature(f"{what}: not a DSSE envelope (a JSON object)")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or not all(isinstance(s, dict) for s in signatures):
        raise BadSignature(f"{what}: no signatures")
    return str(envelope.get("payloadType", "")), _b64(envelope.get("payload"), f"{what}: payload"), signatures


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text or ""), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature(f"{what}: not base64") from None


def load(path: Path) -> Any:
    """An envelope file's JSON; BadSignature when it is none."""
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    except ValueError:
        raise BadSignature(f"{path}: not JSON, so not a DSSE envelope") from None
