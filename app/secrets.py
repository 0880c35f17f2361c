"""Channel secrets: split from the config, encrypted at rest, masked in every answer.

The key is derived from SECRET_KEY with HKDF, so one setting protects both JWTs and stored
secrets, and each use gets its own key. Secret fields are named by dotted paths into the
config (`smtp.password`, `v3.auth_key`); the stored config never holds their values. A path
ending in `.*` (`secret_headers.*`) names a mapping whose every value is secret: its keys are
shown, each value answered as the mask; a value sent back as the mask keeps the stored one.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any, Iterable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.channels import PermanentError, get_sender

MASK = "********"
_MISSING = object()
MAPPING = ".*"


class SecretBox:
    """Encrypts and decrypts a channel's secrets with a key derived from SECRET_KEY."""

    def __init__(self, secret_key: str):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"pulse-channel-secrets", info=b"fernet-v1").derive(
            secret_key.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, values: dict[str, Any]) -> bytes | None:
        return self._fernet.encrypt(json.dumps(values).encode()) if values else None

    def decrypt(self, token: bytes | None) -> dict[str, Any]:
        if not token:
            return {}
        return json.loads(self._fernet.decrypt(bytes(token)))


def get_path(config: dict[str, Any], path: str, default: Any = _MISSING) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def pop_path(config: dict[str, Any], path: str) -> Any:
    parts = path.split(".")
    node: Any = config
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return _MISSING
    return node.pop(parts[-1], _MISSING) if isinstance(node, dict) else _MISSING


class _Secret:
    """One secret field: a value at a dotted path, answered as the mask."""

    unset: Any = None

    def __init__(self, path: str):
        self.path = path
        self.location = path

    def mask(self, value: Any) -> Any:
        return MASK

    def restore(self, config: dict[str, Any], stored: Any) -> None:
        """The mask sent back where this secret is keeps the stored value (or drops the key)."""
        if get_path(config, self.location, None) == MASK:
            if stored is _MISSING:
                pop_path(config, self.location)
            else:
                set_path(config, self.location, stored)


class _SecretMapping(_Secret):
    """A `<path>.*` field: a mapping whose keys are shown and every value is secret."""

    unset: Any = {}

    def __init__(self, path: str):
        super().__init__(path)
        self.location = path[: -len(MAPPING)]

    def mask(self, value: dict[str, Any]) -> dict[str, str]:
        return {name: MASK for name in value}

    def restore(self, config: dict[str, Any], stored: Any) -> None:
        sent = get_path(config, self.location, None)
        if not isinstance(sent, dict):
            return
        stored = stored if isinstance(stored, dict) else {}
        for name, value in list(sent.items()):
            if value == MASK:
                if name in stored:
                    sent[name] = stored[name]
                else:
                    del sent[name]


def _fields(secret_fields: Iterable[str]) -> list[_Secret]:
    return [_SecretMapping(path) if path.endswith(MAPPING) else _Secret(path) for path in secret_fields]


def split_secrets(config: dict[str, Any], secret_fields: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config without secrets, {path: secret}) from a full config."""
    public = copy.deepcopy(config)
    secrets: dict[str, Any] = {}
    for field in _fields(secret_fields):
        value = pop_path(public, field.location)
        if value is not _MISSING and value is not None and value != field.unset:
            secrets[field.path] = value
    return public, secrets


def merge_secrets(public: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The full config: the stored public part with the decrypted secrets put back."""
    full = copy.deepcopy(public)
    for field in _fields(secrets):
        set_path(full, field.location, copy.deepcopy(secrets[field.path]))
    return full


def masked(public: dict[str, Any], secrets: dict[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
    """The config as answered: each secret that is set shows as the mask, unset ones as null
    (an empty mapping for a mapping of secrets)."""
    view = copy.deepcopy(public)
    for field in _fields(secret_fields):
        if field.path in secrets:
            set_path(view, field.location, field.mask(secrets[field.path]))
        elif _parent_exists(view, field.location):
            set_path(view, field.location, copy.deepcopy(field.unset))
    return view


def _parent_exists(config: dict[str, Any], path: str) -> bool:
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    return not parent or isinstance(get_path(config, parent, None), dict)


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics for config: key by key, nested objects merged too."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def restore_masked(config: dict[str, Any], secrets: dict[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
    """A config sent back with "********" where a secret was keeps the stored secret."""
    restored = copy.deepcopy(config)
    for field in _fields(secret_fields):
        field.restore(restored, secrets.get(field.path, _MISSING))
    return restored


def channel_config(box: SecretBox, channel) -> Any:
    """The validated config model of a stored channel, secrets decrypted into it."""
    sender = get_sender(channel.channel_type)
    try:
        secrets = box.decrypt(channel.encrypted_secrets)
    except InvalidToken:
        raise PermanentError("the channel's secrets cannot be decrypted (was SECRET_KEY changed?)") from None
    try:
        return sender.validate_config(merge_secrets(channel.config or {}, secrets))
    except Exception:
        raise PermanentError("the channel's stored configuration is no longer valid") from None
