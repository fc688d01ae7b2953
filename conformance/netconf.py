"""Network configuration lists, loaded the way libcni loads them.

A directory like /etc/cni/net.d is searched for `.conflist` files in file-name order (the first
whose `name` matches wins), then for single-plugin `.conf`/`.json` files (deprecated, wrapped into
a one-plugin list). The list's version is the highest of `cniVersion` and `cniVersions` that this
runtime implements (1.1.0); plugins are not consulted (libcni does not either).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from shared.errors import CNIError, ErrorCode
from shared.version import CURRENT, parse_version

LIST_EXTENSIONS = (".conflist",)
SINGLE_EXTENSIONS = (".conf", ".json")


def go_marshal(obj: Any) -> bytes:
    """JSON as Go's json.Marshal writes a map: sorted keys, compact, HTML characters escaped."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text.encode()


def _conf_error(msg: str, details: str = "", code: int = ErrorCode.INVALID_NETWORK_CONFIG) -> CNIError:
    return CNIError(code, msg, details)


def parse_bool(value: Any, key: str) -> bool:
    """libcni accepts a JSON bool or the strings "true"/"false" in any case; anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _conf_error(f"error parsing configuration list: invalid {key}",
                      f"{key} must be true, false, \"true\" or \"false\", not {value!r}")


def select_version(cni_version: str, cni_versions: Any) -> str:
    """Highest of cniVersion ∪ cniVersions not newer than 1.1.0; entries newer are ignored."""
    if cni_versions is None:
        return cni_version
    if not isinstance(cni_versions, list):
        raise _conf_error("error parsing configuration list: invalid type for cniVersions",
                          f"cniVersions must be a list of strings, not {cni_versions!r}")
    current = parse_version(CURRENT)
    candidates: list[str] = []
    for i, entry in enumerate(cni_versions):
        if not isinstance(entry, str):
            raise _conf_error(f"error parsing configuration list: invalid type for cniVersions index {i}",
                              f"entry {entry!r} is not a string")
        try:
            parsed = parse_version(entry)
        except CNIError as e:
            raise _conf_error(f"error parsing configuration list: invalid cniVersions entry {entry} at index {i}",
                              str(e), ErrorCode.DECODING_FAILURE) from None
        if parsed <= current:
            candidates.append(entry)
    if cni_version and parse_version(cni_version) <= current:
        candidates.append(cni_version)
    if not candidates:
        return cni_version
    return max(candidates, key=parse_version)


@dataclass(frozen=True)
class PluginConf:
    """One entry of `plugins`: its raw object (passed through untouched) and what libcni reads of it."""

    type: str
    raw: Mapping[str, Any]
    capabilities: frozenset[str] = frozenset()  # the enabled ones

    @property
    def description(self) -> str:
        name = self.raw.get("name")
        return f'type="{self.type}"' + (f' name="{name}"' if isinstance(name, str) and name else "")

    @classmethod
    def from_obj(cls, obj: Any, where: str) -> PluginConf:
        if not isinstance(obj, dict):
            raise _conf_error(f"{where}: a plugin configuration must be a JSON object", repr(obj),
                              ErrorCode.DECODING_FAILURE)
        plugin_type = obj.get("type")
        if not isinstance(plugin_type, str) or not plugin_type:
            raise _conf_error(f"{where}: missing 'type'", "every plugin needs the name of its executable in 'type'")
        caps = obj.get("capabilities") or {}
        if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
            raise _conf_error(f"{where}: invalid capabilities", f"expected a map of name to bool, got {caps!r}")
        return cls(type=plugin_type, raw=obj, capabilities=frozenset(k for k, v in caps.items() if v))


@dataclass(frozen=True)
class NetworkConfigList:
    name: str
    cni_version: str  # the negotiated version every plugin is called with
    plugins: tuple[PluginConf, ...]
    bytes: bytes = field(repr=False)  # cached verbatim (base64) as libcni does
    disable_check: bool = False
    disable_gc: bool = False
    source: str = ""

    @property
    def capabilities(self) -> frozenset[str]:
        """Union of the capabilities the plugins enable (what ValidateNetworkList returns)."""
        return frozenset().union(*(p.capabilities for p in self.plugins))


def _decode(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _conf_error(f"error parsing {what}", str(e), ErrorCode.DECODING_FAILURE) from None
    if not isinstance(obj, dict):
        raise _conf_error(f"error parsing {what}", f"expected a JSON object, got {type(obj).__name__}",
                          ErrorCode.DECODING_FAILURE)
    return obj


def conflist_from_bytes(data: bytes, source: str = "", extra_plugins: tuple[PluginConf, ...] = ()) -> NetworkConfigList:
    raw = _decode(data, "configuration list")
    name = raw.get("name")
    if name is None:
        raise _conf_error("error parsing configuration list: no name", source)
    if not isinstance(name, str):
        raise _conf_error("error parsing configuration list: invalid name type", repr(name))
    version = raw.get("cniVersion", "")
    if not isinstance(version, str):
        raise _conf_error("error parsing configuration list: invalid cniVersion type", repr(version))
    version = select_version(version, raw.get("cniVersions"))
    disable_check = parse_bool(raw["disableCheck"], "disableCheck") if "disableCheck" in raw else False
    disable_gc = parse_bool(raw["disableGC"], "disableGC") if "disableGC" in raw else False
    inline_only = parse_bool(raw["loadOnlyInlinedPlugins"], "loadOnlyInlinedPlugins") \
        if "loadOnlyInlinedPlugins" in raw else False
    plugins: list[PluginConf] = []
    if "plugins" in raw:
        items = raw["plugins"]
        if not isinstance(items, list):
            raise _conf_error("error parsing configuration list: invalid 'plugins' type", repr(items))
        if not items:
            raise _conf_error("error parsing configuration list: no plugins in list", source)
        plugins = [PluginConf.from_obj(p, f"plugins[{i}]") for i, p in enumerate(items)]
    elif inline_only:
        raise _conf_error("error parsing configuration list: no plugins in list",
                          "loadOnlyInlinedPlugins is true but there is no 'plugins' key")
    if not inline_only:
        plugins.extend(extra_plugins)
    if not plugins:
        raise _conf_error("error parsing configuration list: no plugin configs found", source)
    return NetworkConfigList(name=name, cni_version=version, plugins=tuple(plugins), bytes=data,
                             disable_check=disable_check, disable_gc=disable_gc, source=source)


def conflist_from_conf(data: bytes, source: str = "") -> NetworkConfigList:
    """A deprecated single-plugin config, wrapped into a list the way libcni's ConfListFromConf does."""
    raw = _decode(data, "configuration")
    PluginConf.from_obj(raw, source or "configuration")
    name, version = raw.get("name", ""), raw.get("cniVersion", "")
    wrapped = go_marshal({"cniVersion": version if isinstance(version, str) else "",
                          "name": name, "plugins": [raw]})
    return conflist_from_bytes(wrapped, source)


def load_file(path: str) -> NetworkConfigList:
    """A `.conflist` is a list; anything else is read as a single-plugin config."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _conf_error(f"cannot read network configuration {path}", str(e), ErrorCode.IO_FAILURE) from None
    if path.endswith(LIST_EXTENSIONS):
        return conflist_from_bytes(data, path)
    return conflist_from_conf(data, path)


def _files(conf_dir: str, extensions: tuple[str, ...]) -> list[str]:
    try:
        names = sorted(os.listdir(conf_dir))
    except OSError as e:
        raise _conf_error(f"cannot read configuration directory {conf_dir}", str(e), ErrorCode.IO_FAILURE) from None
    return [os.path.join(conf_dir, n) for n in names
            if n.endswith(extensions) and os.path.isfile(os.path.join(conf_dir, n))]


def _sibling_plugins(conf_dir: str, name: str) -> tuple[PluginConf, ...]:
    """Plugin objects in `<conf_dir>/<network name>/*.conf`, appended unless loadOnlyInlinedPlugins."""
    sub = os.path.join(conf_dir, name)
    if not name or not os.path.isdir(sub):
        return ()
    out = []
    for path in _files(sub, (".conf",)):
        with open(path, "rb") as f:
            out.append(PluginConf.from_obj(_decode(f.read(), path), path))
    return tuple(out)


def _peek_name(path: str) -> Any:
    with open(path, "rb") as f:
        return _decode(f.read(), path).get("name")


def load_network(conf_dir: str, name: str) -> NetworkConfigList:
    """Find network `name` in a directory: conflists first (by file name), then single configs."""
    for path in _files(conf_dir, LIST_EXTENSIONS):
        if _peek_name(path) == name:
            with open(path, "rb") as f:
                return conflist_from_bytes(f.read(), path, _sibling_plugins(conf_dir, name))
    for path in _files(conf_dir, SINGLE_EXTENSIONS):
        if _peek_name(path) == name:
            return load_file(path)
    raise _conf_error(f'no net configuration with name "{name}" in {conf_dir}',
                      "looked at *.conflist, then *.conf and *.json, in file-name order")
