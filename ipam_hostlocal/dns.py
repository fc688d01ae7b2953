"""resolv.conf into the result's DNS, parsed exactly as the reference does (dns.go)."""
from __future__ import annotations

from shared.errors import CNIError, ErrorCode
from shared.types import DNS


def parse_resolv_conf(text: str) -> DNS:
    """Blank lines and `#`/`;` comments are skipped; inline comments are kept, as in the reference."""
    dns = DNS()
    for raw in text.split("\n"):  # bufio.ScanLines; strip() also drops the \r
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        key = fields[0]
        if key == "nameserver":
            dns.nameservers.append(fields[1])
        elif key == "domain":
            dns.domain = fields[1]
        elif key == "search":
            dns.search.extend(fields[1:])
        elif key == "options":
            dns.options.extend(fields[1:])
    return dns


def read_resolv_conf(path: str) -> DNS:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CNIError(ErrorCode.IO_FAILURE, f"cannot read ipam.resolvConf {path}: {e.strerror}") from None
    return parse_resolv_conf(data.decode("utf-8", "replace"))
