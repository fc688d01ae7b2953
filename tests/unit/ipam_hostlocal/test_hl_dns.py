"""resolv.conf parsing, as the reference's dns.go does it."""
from __future__ import annotations

import pytest

from ipam_hostlocal.dns import parse_resolv_conf, read_resolv_conf
from shared.errors import CNIError


def test_reference_example():
    text = ("nameserver 203.0.113.1\nnameserver 203.0.113.2 ignored\r\n# comment\n; also a comment\n"
            "domain example.com\ndomain last.example.com\nsearch a.example b.example\n"
            "options ndots:5 timeout:2\noptions rotate\n\n   \nlonely\nunknown key value\n")
    dns = parse_resolv_conf(text)
    assert dns.nameservers == ["203.0.113.1", "203.0.113.2"]
    assert dns.domain == "last.example.com"
    assert dns.search == ["a.example", "b.example"]
    assert dns.options == ["ndots:5", "timeout:2", "rotate"]


def test_inline_comments_are_kept_like_the_reference():
    assert parse_resolv_conf("search a.example # not stripped\n").search == ["a.example", "#", "not", "stripped"]


def test_empty_file_gives_empty_dns():
    assert not parse_resolv_conf("")


def test_missing_file_is_an_io_error(tmp_path):
    with pytest.raises(CNIError) as e:
        read_resolv_conf(str(tmp_path / "missing.conf"))
    assert e.value.code == 5 and "ipam.resolvConf" in e.value.msg and str(tmp_path) in e.value.msg


def test_read_file(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 192.0.2.53\n")
    assert read_resolv_conf(str(path)).nameservers == ["192.0.2.53"]
