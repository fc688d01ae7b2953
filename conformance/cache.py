"""The per-attachment result cache, byte-compatible with libcni's (`cniCacheV1`).

After a successful ADD, `<cacheDir>/results/<network>-<containerID>-<ifname>` holds the whole
conflist (base64), the runtime arguments and the final result. DEL and CHECK read the result back
as `prevResult`; GC walks every file to find stale attachments. The directory is 0700 and the file
0600 because results and arguments may be sensitive.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from shared.errors import CNIError, ErrorCode

KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"


@dataclass(frozen=True)
class CachedAttachment:
    """One cache file as GetCachedAttachments reports it."""

    container_id: str
    ifname: str
    network: str
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    config: bytes = b""
    result: Mapping[str, Any] | None = None
    path: str = ""


def _encode(entry: CachedAttachment) -> bytes:
    """Field order and omitempty as Go's cachedInfo struct."""
    out: dict[str, Any] = {
        "kind": KIND,
        "containerId": entry.container_id,
        "config": base64.b64encode(entry.config).decode(),
        "ifName": entry.ifname,
        "networkName": entry.network,
    }
    if entry.netns:
        out["netns"] = entry.netns
    if entry.cni_args:
        out["cniArgs"] = [list(pair) for pair in entry.cni_args]
    if entry.capability_args:
        out["capabilityArgs"] = dict(entry.capability_args)
    if entry.result:
        out["result"] = dict(entry.result)
    return json.dumps(out, separators=(",", ":")).encode()


def _decode(data: bytes, path: str) -> CachedAttachment | None:
    """None for anything that is not a usable cniCacheV1 entry (libcni skips those)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("kind") != KIND:
        return None
    ifname, network, cid = obj.get("ifName"), obj.get("networkName"), obj.get("containerId", "")
    if not isinstance(ifname, str) or not ifname or not isinstance(network, str) or not network:
        return None
    try:
        config = base64.b64decode(obj.get("config") or "", validate=True)
    except ValueError:
        config = b""
    raw_args = obj.get("cniArgs") or []
    args = tuple((str(p[0]), str(p[1])) for p in raw_args if isinstance(p, list) and len(p) == 2)
    caps = obj.get("capabilityArgs") or {}
    result = obj.get("result")
    return CachedAttachment(container_id=cid if isinstance(cid, str) else "", ifname=ifname, network=network,
                            netns=obj.get("netns") or "", cni_args=args,
                            capability_args=caps if isinstance(caps, dict) else {}, config=config,
                            result=result if isinstance(result, dict) else None, path=path)


class ResultCache:
    """`<cache_dir>/results/*`, read and written as libcni does."""

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = cache_dir

    @property
    def results_dir(self) -> str:
        return os.path.join(self.cache_dir, "results")

    def path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.results_dir, f"{network}-{container_id}-{ifname}")

    def save(self, entry: CachedAttachment) -> str:
        path = self.path(entry.network, entry.container_id, entry.ifname)
        try:
            os.makedirs(self.results_dir, mode=0o700, exist_ok=True)
            # a dot name: never a valid network name, so readers skip it while it is half written
            tmp = os.path.join(self.results_dir, f".{os.path.basename(path)}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, _encode(entry))
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            raise CNIError(ErrorCode.IO_FAILURE, f'failed to set network "{entry.network}" cached result',
                           str(e)) from None
        return path

    def load_result(self, network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
        """The cached result JSON; None when there is no cache file. A legacy file is the bare result.

        Raises code 6 when the file exists but holds no readable result.
        """
        path = self.path(network, container_id, ifname)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None  # libcni ignores read errors: the cache may simply not exist
        entry = _decode(data, path)
        if entry is not None:
            return dict(entry.result) if entry.result else {}
        try:
            legacy = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CNIError(ErrorCode.DECODING_FAILURE, f"corrupt cached result {path}", str(e)) from None
        if not isinstance(legacy, dict):
            raise CNIError(ErrorCode.DECODING_FAILURE, f"corrupt cached result {path}", "not a JSON object")
        return legacy

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        try:
            os.unlink(self.path(network, container_id, ifname))
        except FileNotFoundError:
            pass

    def attachments(self, container_id: str = "") -> list[CachedAttachment]:
        """Every usable entry, file names sorted; names are not trusted (they contain '-')."""
        try:
            names = sorted(os.listdir(self.results_dir))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise CNIError(ErrorCode.IO_FAILURE, f"cannot list {self.results_dir}", str(e)) from None
        out = []
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(self.results_dir, name)
            try:
                with open(path, "rb") as f:
                    entry = _decode(f.read(), path)
            except OSError:
                continue
            if entry is None or (container_id and entry.container_id != container_id):
                continue
            out.append(entry)
        return out
