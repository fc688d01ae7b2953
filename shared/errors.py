"""The one error type every handler raises, with the spec's well-known codes."""
from __future__ import annotations

from enum import IntEnum
from typing import Any


class ErrorCode(IntEnum):
    UNKNOWN = 0
    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    INVALID_NETNS = 8  # reference library only
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    INTERNAL = 999  # reference library only: anything untyped


class CNIError(Exception):
    """A failure that reaches the runtime as CNI error JSON.

    `code` is kept as a plain int so errors relayed from a delegate keep whatever code it used.
    """

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:
        return (type(self), (self.code, self.msg, self.details))

    def to_dict(self, cni_version: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg

    def __repr__(self) -> str:
        return f"CNIError({self.code}, {self.msg!r}, {self.details!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CNIError):
            return NotImplemented
        return (self.code, self.msg, self.details) == (other.code, other.msg, other.details)

    __hash__ = Exception.__hash__


def invalid_config(msg: str, details: str = "") -> CNIError:
    return CNIError(ErrorCode.INVALID_NETWORK_CONFIG, msg, details)
