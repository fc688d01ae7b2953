"""Config loading: defaults, every validation error (code and message), requested IPs, and the
agreement between the JSON Schema and the typed loader that lets DEL skip the schema."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_hostlocal.config import DEFAULT_DATA_DIR, load_config
from shared.errors import CNIError
from shared.request import Request
from shared.schema import schema_errors


def req(ipam=None, cni_args="", version="1.0.0", **top) -> Request:
    config = {"cniVersion": version, "name": "net1", **top}
    if ipam is not None:
        config["ipam"] = ipam
    return Request(command="ADD", container_id="c1", ifname="eth0", args=cni_args, config=config)


def error_of(request: Request, use_schema: bool = True) -> CNIError:
    with pytest.raises(CNIError) as e:
        load_config(request, use_schema=use_schema)
    return e.value


def test_defaults():
    conf = load_config(req({"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}]]}))
    (r,) = conf.range_sets[0].ranges
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.2.1", "10.1.2.254", "10.1.2.1")
    assert conf.data_dir == DEFAULT_DATA_DIR and conf.resolv_conf == "" and conf.reclaim_after_reboot
    conf6 = load_config(req({"ranges": [[{"subnet": "2001:db8::/64"}]], "dataDir": ""}))
    r6 = conf6.range_sets[0].ranges[0]
    assert str(r6.end) == "2001:db8::ffff:ffff:ffff:ffff" and conf6.data_dir == DEFAULT_DATA_DIR


def test_order_runtime_ranges_then_legacy_then_ranges():
    conf = load_config(req({"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.5", "gateway": "10.2.0.254",
                            "ranges": [[{"subnet": "10.3.0.0/24"}]]},
                           runtimeConfig={"ipRanges": [[{"subnet": "10.1.0.0/24"}]]}))
    assert [str(s) for s in conf.range_sets] == ["10.1.0.1-10.1.0.254", "10.2.0.5-10.2.0.254", "10.3.0.1-10.3.0.254"]
    assert str(conf.range_sets[1].ranges[0].gateway) == "10.2.0.254"


def test_legacy_fields_without_subnet_are_dropped():
    conf = load_config(req({"rangeStart": "10.9.9.9", "ranges": [[{"subnet": "10.3.0.0/24"}]]}))
    assert len(conf.range_sets) == 1


def test_requested_ips_in_order_and_prefix_dropped():
    conf = load_config(req({"ranges": [[{"subnet": "10.1.0.0/16"}]]}, cni_args="IgnoreUnknown=1;IP=10.1.0.9/16;K8S_POD_NAME=x",
                           **{"args": {"cni": {"ips": ["10.1.0.10"]}}, "runtimeConfig": {"ips": ["10.1.0.11/24"]}}))
    assert [str(i) for i in conf.requested] == ["10.1.0.9", "10.1.0.10", "10.1.0.11"]


def test_routes_copied():
    conf = load_config(req({"ranges": [[{"subnet": "10.1.0.0/16"}]],
                            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.1", "mtu": 1400}]}))
    assert [r.to_json(2) for r in conf.routes] == [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.1", "mtu": 1400}]


R = lambda **kw: {"ranges": [[{"subnet": "10.1.2.0/24", **kw}]]}  # noqa: E731

CONFIG_ERRORS = [
    (None, "IPAM config missing 'ipam' key"),
    ({"type": "host-local"}, "no IP ranges specified"),
    ({"ranges": [[]]}, "invalid range set 0: empty range set"),
    ({"ranges": [[{}]]}, "invalid range set 0: IP <nil> not v4 nor v6"),
    ({"ranges": [[{"subnet": "10.1.2.0"}]]}, "invalid ipam.ranges[0][0].subnet: invalid CIDR address: 10.1.2.0"),
    ({"ranges": [[{"subnet": "10.1.2.0/255.255.255.0"}]]}, "invalid ipam.ranges[0][0].subnet: invalid CIDR address: 10.1.2.0/255.255.255.0"),
    ({"ranges": [[{"subnet": "10.1.2.0/31"}]]}, "invalid range set 0: Network 10.1.2.0/31 too small to allocate from"),
    ({"ranges": [[{"subnet": "10.1.2.0/32"}]]}, "invalid range set 0: Network 10.1.2.0/32 too small to allocate from"),
    ({"ranges": [[{"subnet": "2001:db8::/127"}]]}, "invalid range set 0: Network 2001:db8::/127 too small to allocate from"),
    ({"ranges": [[{"subnet": "2001:db8::/128"}]]}, "invalid range set 0: Network 2001:db8::/128 too small to allocate from"),
    ({"ranges": [[{"subnet": "10.1.2.5/24"}]]},
     "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.1.2.0"),
    (R(rangeStart="10.1.3.5"), "invalid range set 0: RangeStart 10.1.3.5 not in network 10.1.2.0/24"),
    (R(rangeEnd="10.1.3.5"), "invalid range set 0: RangeEnd 10.1.3.5 not in network 10.1.2.0/24"),
    (R(rangeStart="10.1.2.50", rangeEnd="10.1.2.40"), "invalid range set 0: RangeStart 10.1.2.50 not in network 10.1.2.0/24"),
    (R(rangeStart="10.1.2.300"), "invalid ipam.ranges[0][0].rangeStart: invalid IP address: 10.1.2.300"),
    (R(gateway="2001:db8::1"), "invalid range set 0: gateway 2001:db8::1 is not of the family of network 10.1.2.0/24"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "2001:db8::/64"}]]}, "invalid range set 0: mixed address families"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]]},
     "invalid range set 0: subnets 10.1.2.1-10.1.2.254 and 10.1.2.1-10.1.2.126 overlap"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.2.0/25"}]]}, "range set 0 overlaps with 1"),
    ({"subnet": "10.1.0.0/16", "ranges": [[{"subnet": "10.2.0.0/16"}], [{"subnet": "10.1.5.0/24"}]]},
     "range set 0 overlaps with 2"),
    ({"ranges": [[{"subnet": 5}]]}, "invalid ipam.ranges[0][0].subnet: 5 is not of type 'string', 'null'"),
    ({"ranges": {"subnet": "10.1.2.0/24"}}, "invalid ipam.ranges: {'subnet': '10.1.2.0/24'} is not of type 'array', 'null'"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}]], "dataDir": 7}, "invalid ipam.dataDir: 7 is not of type 'string', 'null'"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}]], "reclaimAfterReboot": "yes"},
     "invalid ipam.reclaimAfterReboot: 'yes' is not of type 'boolean', 'null'"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}]], "routes": [{"gw": "10.1.2.1"}]},
     "invalid ipam.routes[0]: 'dst' is a required property"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}]], "routes": [{"dst": "nope"}]}, "invalid ipam.routes[0]: invalid route dst: 'nope'"),
    ({"ranges": [[{"subnet": "10.1.2.0/24"}]], "routes": [{"dst": "0.0.0.0/0", "mtu": -1}]},
     "invalid ipam.routes[0].mtu: -1 is less than the minimum of 0"),
]


@pytest.mark.parametrize("ipam,message", CONFIG_ERRORS)
@pytest.mark.parametrize("use_schema", [True, False], ids=["schema", "fast"])
def test_config_errors_are_code_7_with_the_reference_message(ipam, message, use_schema):
    err = error_of(req(ipam), use_schema)
    assert err.code == 7
    assert err.msg == message


def test_version_limits_one_set_per_family_below_030():
    two = {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]]}
    for version in ("0.1.0", "0.2.0", ""):
        err = error_of(req(two, version=version))
        assert err.code == 7 and err.msg == f"CNI version {version} does not support more than 1 address per family"
    assert len(load_config(req(two, version="0.3.0")).range_sets) == 2
    dual = {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]]}
    assert len(load_config(req(dual, version="0.2.0")).range_sets) == 2


@pytest.mark.parametrize("where,items,message", [
    ("args", [""], "cannot understand ip: IP <nil> not v4 nor v6"),
    ("args", ["10.1.2.x"], "invalid args.cni.ips[0]: invalid IP address 10.1.2.x"),
    ("runtime", ["fe80::1%eth0"], "invalid runtimeConfig.ips[0]: invalid IP address fe80::1%eth0"),
    ("runtime", ["010.1.2.3"], "invalid runtimeConfig.ips[0]: invalid IP address 010.1.2.3"),
])
def test_requested_ip_errors(where, items, message):
    extra = {"args": {"cni": {"ips": items}}} if where == "args" else {"runtimeConfig": {"ips": items}}
    err = error_of(req(R(), **extra))
    assert (err.code, err.msg) == (7, message)


@pytest.mark.parametrize("args,message", [
    ("IP=10.1.2.x", 'ARGS: error parsing value of pair "IP=10.1.2.x": invalid IP address 10.1.2.x'),
    ("MAC=00:11:22:33:44:55", "ARGS: unknown args"),
    ("IP=1=2", 'ARGS: invalid pair "IP=1=2"'),
    ("ip=10.1.2.3", "ARGS: unknown args"),
])
def test_cni_args_errors_are_code_4(args, message):
    err = error_of(req(R(), cni_args=args))
    assert err.code == 4 and err.msg.startswith(message)
    if "unknown" in message:  # the list of offending pairs is the core's format; the pair must be named
        assert args in err.msg


def test_empty_ip_arg_is_ignored():
    assert load_config(req(R(), cni_args="IP=")).requested == ()


# -- schema and typed loader agree (so DEL may skip the schema) --------------------------------------
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(
    ["", "10.1.2.0/24", "10.1.2.0/30", "2001:db8::/64", "10.1.2.9", "x", "0.0.0.0/0", "10.1.3.0/24"]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.sampled_from(
                                                                 ["subnet", "rangeStart", "gateway", "dst", "gw", "mtu"]),
                                                                 inner, max_size=3)), max_leaves=8)
range_obj = st.fixed_dictionaries({}, optional={k: json_value for k in ("subnet", "rangeStart", "rangeEnd", "gateway")})
ipam_obj = st.fixed_dictionaries({}, optional={
    "ranges": st.one_of(json_value, st.lists(st.lists(st.one_of(range_obj, json_value), max_size=2), max_size=2)),
    "subnet": json_value, "routes": st.one_of(json_value, st.lists(st.one_of(
        st.fixed_dictionaries({"dst": json_value}, optional={"gw": json_value, "mtu": json_value}), json_value), max_size=2)),
    "dataDir": json_value, "resolvConf": json_value, "reclaimAfterReboot": json_value, "type": json_value})
config_obj = st.fixed_dictionaries({"ipam": st.one_of(ipam_obj, json_value)}, optional={
    "args": st.one_of(json_value, st.fixed_dictionaries({"cni": st.one_of(json_value, st.fixed_dictionaries(
        {"ips": st.one_of(json_value, st.lists(json_value, max_size=2))}))})),
    "runtimeConfig": st.one_of(json_value, st.fixed_dictionaries({}, optional={
        "ips": st.lists(json_value, max_size=2), "ipRanges": st.lists(st.lists(range_obj, max_size=2), max_size=2)}))})


@settings(max_examples=300, deadline=None)
@given(config_obj)
def test_typed_loader_rejects_whatever_the_schema_rejects(config):
    config = {"cniVersion": "1.0.0", "name": "net1", **config}
    request = Request(command="DEL", container_id="c1", ifname="eth0", config=config)
    schema_ok = not schema_errors(config, "host-local-config") and config.get("ipam") is not None
    try:
        load_config(request, use_schema=False)
        fast_ok = True
    except CNIError as e:
        fast_ok = False
        assert e.code == 7
    if not schema_ok:
        assert not fast_ok, "the typed loader accepted a config the schema rejects"
    try:
        load_config(request, use_schema=True)
        slow_ok = True
    except CNIError:
        slow_ok = False
    assert fast_ok == slow_ok


def test_keys_match_case_insensitively_like_go():
    conf = load_config(req({"Ranges": [[{"SUBNET": "10.1.2.0/24", "RangeStart": "10.1.2.10", "gateway": "10.1.2.1",
                                         "Gateway": "10.1.2.9"}]], "DataDir": "/tmp/x"},
                           runtimeConfig={"IPs": ["10.1.2.20"]}))
    r = conf.range_sets[0].ranges[0]
    assert str(r.start) == "10.1.2.10" and str(r.gateway) == "10.1.2.9"  # the last spelling wins
    assert conf.data_dir == "/tmp/x" and [str(i) for i in conf.requested] == ["10.1.2.20"]
    err = error_of(req({"RANGES": [[{"Subnet": 5}]]}))
    assert err.msg == "invalid ipam.ranges[0][0].subnet: 5 is not of type 'string', 'null'"
