"""Property tests: skel.run never raises and always honours the process contract; conversions of
any readable result are schema-valid or fail with a CNI error."""
from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import skel
from shared.errors import CNIError
from shared.schema import result_problems, schema_errors
from shared.types import Result
from shared.version import ALL_VERSIONS
from tests.support.core_plugin import Recorder, make_plugin, sample_result

VERBS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "", "add", "NOPE"]
VERSIONS = list(ALL_VERSIONS) + ["", "1.1", "9.9.9", "abc", "1.2.3.4"]
env_values = st.one_of(st.sampled_from(["", "ctr1", "eth0", "/proc/self/ns/net", "/no/netns", "..", "-x",
                                        "a" * 16, "IgnoreUnknown=1", "/bin", "1", "true"]),
                       st.text(max_size=20))
environments = st.fixed_dictionaries(
    {"CNI_COMMAND": st.sampled_from(VERBS) | st.text(max_size=8)},
    optional={k: env_values for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH",
                                      "CNI_NETNS_OVERRIDE", "OTHER")})
GOOD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/no/netns", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/bin"}
# Mostly-good environments reach the handlers: a good one with the verb and at most one variable changed.
near_good = st.tuples(st.sampled_from(VERBS + ["ADD"] * 4), st.sampled_from(sorted(GOOD_ENV)), env_values | st.none()).map(
    lambda t: {k: v for k, v in {**GOOD_ENV, "CNI_COMMAND": t[0], t[1]: t[2]}.items() if v is not None})
environments = environments | near_good
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=10))
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
good_configs = st.fixed_dictionaries({"name": st.just("net"), "cniVersion": st.sampled_from(VERSIONS)},
                                     optional={"prevResult": json_values, "args": json_values})
configs = good_configs | st.fixed_dictionaries(
    {}, optional={"name": st.sampled_from(["net", "", "-x", "a/b"]) | json_values,
                  "cniVersion": st.sampled_from(VERSIONS) | json_values,
                  "prevResult": json_values, "runtimeConfig": json_values, "args": json_values,
                  "cni.dev/valid-attachments": json_values, "type": json_values})
stdins = st.one_of(st.binary(max_size=64), configs.map(lambda c: json.dumps(c).encode()),
                   json_values.map(lambda v: json.dumps(v).encode()))
# Half random, half "almost right" so that handlers and result printing are reached often.
cases = st.one_of(st.tuples(environments, stdins),
                  st.tuples(near_good, good_configs.map(lambda c: json.dumps(c).encode())))


def _handler_behaviour(rec: Recorder, behaviour: int) -> None:
    if behaviour == 1:
        rec.raise_ = CNIError(11, "later", "x")
    elif behaviour == 2:
        rec.raise_ = ValueError("unexpected")
    elif behaviour == 3:
        rec.result = Result()  # no IPs: fails for 0.x configs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases, behaviour=st.integers(0, 3), about=st.booleans())
def test_run_never_raises_and_keeps_the_contract(case: tuple[dict[str, str], bytes], behaviour: int,
                                                 about: bool) -> None:
    env, stdin = case
    rec = Recorder()
    _handler_behaviour(rec, behaviour)
    plugin = make_plugin(rec, about="about" if about else "")
    out = skel.run(plugin, env, lambda: stdin)
    assert out.exit_code in (0, 1)
    if out.exit_code == 0:
        if out.stdout:
            doc = json.loads(out.stdout)
            if env["CNI_COMMAND"] == "VERSION":
                assert schema_errors(doc, "version-info") == []
            else:
                assert env["CNI_COMMAND"] == "ADD"
                version = json.loads(stdin).get("cniVersion") or "0.1.0"
                assert result_problems(doc, version) == []
    else:
        doc = json.loads(out.stdout)
        assert schema_errors(doc, "error") == [], doc
        assert doc["cniVersion"] in ALL_VERSIONS
        assert b"Traceback" not in out.stdout


ips = st.lists(st.fixed_dictionaries(
    {"address": st.sampled_from(["10.0.0.2/24", "fd00::2/64", "10.0.0.2", "x", "0.0.0.0/0"])},
    optional={"gateway": st.sampled_from(["10.0.0.1", "fd00::1", "", "bad"]),
              "interface": st.integers(-2, 3), "version": st.sampled_from(["4", "6", ""])}), max_size=3)
routes = st.lists(st.fixed_dictionaries(
    {"dst": st.sampled_from(["0.0.0.0/0", "::/0", "10.0.0.0/8", "10.1.2.3/8", "bad"])},
    optional={"gw": st.sampled_from(["10.0.0.1", "fd00::1"]), "mtu": st.integers(-1, 9000),
              "table": st.integers(0, 300), "scope": st.sampled_from([0, 253, 254])}), max_size=3)
results = st.fixed_dictionaries(
    {"cniVersion": st.sampled_from(list(ALL_VERSIONS) + [""])},
    optional={"ips": ips, "routes": routes,
              "interfaces": st.lists(st.fixed_dictionaries({"name": st.text(max_size=5)},
                                                           optional={"mtu": st.integers(0, 9000),
                                                                     "sandbox": st.text(max_size=5)}), max_size=3),
              "ip4": st.fixed_dictionaries({"ip": st.sampled_from(["10.0.0.2/24", "fd00::1/64"])},
                                           optional={"routes": routes}),
              "ip6": st.fixed_dictionaries({"ip": st.sampled_from(["fd00::2/64", "10.0.0.2/24"])}),
              "dns": st.fixed_dictionaries({}, optional={"nameservers": st.lists(st.text(max_size=5), max_size=2),
                                                         "domain": st.text(max_size=5)})})


@settings(max_examples=300, deadline=None)
@given(doc=results)
def test_any_readable_result_converts_to_schema_valid_output(doc: dict[str, Any]) -> None:
    try:
        r = Result.from_json(doc)
    except CNIError as e:
        assert e.code in (1, 6)
        return
    for version in ALL_VERSIONS:
        try:
            out = r.to_json(version)
        except CNIError as e:
            assert (e.code, version in ("0.1.0", "0.2.0"), r.ips) == (1, True, [])
            continue
        problems = result_problems(out, version)
        # An interface index read from a result without interfaces is kept (like the reference),
        # so only that problem may remain.
        assert all("interface" in p for p in problems), (out, problems)
        assert Result.from_json(out).to_json(version) == out


def test_sample_round_trip_sanity() -> None:
    assert result_problems(sample_result().to_json("1.1.0"), "1.1.0") == []
