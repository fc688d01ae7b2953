"""The runtime driver against recording fake plugins: what libcni would send, in which order, and
what it leaves in its cache (spec notes §8, T123–T127)."""
from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from conformance.fakeplugin import FakePlugins, fake_plugins
from conformance.netconf import conflist_from_bytes
from conformance.runtime import Attachment, ChainError, MultiError, Runtime
from shared.errors import CNIError

RESULT_A = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:05", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0"}],
}


@pytest.fixture
def fakes(tmp_path: Path) -> FakePlugins:
    return fake_plugins(tmp_path / "bin")


@pytest.fixture
def rt(fakes: FakePlugins, tmp_path: Path) -> Runtime:
    return Runtime([str(fakes.dir)], cache_dir=str(tmp_path / "cache"), timeout=10)


def netlist(plugins: list[dict[str, Any]], version: str = "1.1.0", name: str = "net1", **extra: Any):
    raw = {"cniVersion": version, "name": name, "plugins": plugins, **extra}
    return conflist_from_bytes(json.dumps(raw).encode(), "test")


def two_chain(fakes: FakePlugins, version: str = "1.1.0", **extra: Any):
    result = {**RESULT_A, "cniVersion": version}
    if version < "1.0.0":
        result = {**result, "ips": [{**RESULT_A["ips"][0], "version": "4"}]}
    fakes.make("first", ADD={"result": result})
    fakes.make("second")
    return netlist([{"type": "first", "mode": "x", "capabilities": {"portMappings": True, "bandwidth": False}},
                    {"type": "second", "name": "tail"}], version, **extra), result


ATT = Attachment("ctr1", "/run/netns/x", "eth0", args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")),
                 capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                                  "bandwidth": {"ingressRate": 1}, "ips": ["10.1.0.5/24"]})


# -- T123: chains ---------------------------------------------------------------------------
def test_add_chain_passes_prev_result_as_returned_and_injects_name_version(fakes, rt):
    net, result = two_chain(fakes)
    out = rt.add(net, ATT)
    first, second = fakes.calls("ADD")
    assert (first["plugin"], second["plugin"]) == ("first", "second")
    assert "prevResult" not in first["config"]
    assert second["config"]["prevResult"] == result
    for call in (first, second):
        assert call["config"]["name"] == "net1" and call["config"]["cniVersion"] == "1.1.0"
    assert first["config"]["mode"] == "x"
    assert out.raw == result and str(out.result.ips[0].address) == "10.1.0.5/24"
    assert [c.plugin_type for c in out.calls] == ["first", "second"]
    assert all(c.wall_ms > 0 for c in out.calls) and out.wall_ms >= sum(c.wall_ms for c in out.calls)


def test_runtime_config_is_enabled_and_provided_capabilities_only(fakes, rt):
    net, _ = two_chain(fakes)
    rt.add(net, ATT)
    first, second = fakes.calls("ADD")
    # bandwidth is provided but disabled; ips is provided but not declared
    assert first["config"]["runtimeConfig"] == {"portMappings": ATT.capability_args["portMappings"]}
    assert first["config"]["capabilities"] == {"portMappings": True, "bandwidth": False}  # libcni leaves it
    assert "runtimeConfig" not in second["config"]


def test_no_runtime_config_key_when_nothing_provided(fakes, rt):
    net, _ = two_chain(fakes)
    rt.add(net, Attachment("ctr1", "/run/netns/x"))
    assert all("runtimeConfig" not in c["config"] for c in fakes.calls("ADD"))


def test_stdin_is_sorted_compact_json_like_go(fakes, rt):
    net, _ = two_chain(fakes)
    rt.add(net, Attachment("ctr1", "/run/netns/x"))
    stdin = fakes.calls("ADD")[0]["stdin"]
    assert stdin == json.dumps(json.loads(stdin), sort_keys=True, separators=(",", ":"))


def test_six_cni_vars_always_exported_and_env_inherited(fakes, tmp_path):
    rt = Runtime([str(fakes.dir)], cache_dir=str(tmp_path / "c"), env={"PATH": "/usr/bin", "MARKER": "m",
                                                                         "CNI_NETNS": "stale"})
    net, _ = two_chain(fakes)
    fakes.behave("first", ADD={"result": RESULT_A}, record_env=["MARKER"])
    rt.add(net, ATT)
    rt.gc(net, [])
    add, gc = fakes.calls("ADD")[0], fakes.calls("GC")[0]
    assert add["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/x",
                          "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p",
                          "CNI_PATH": str(fakes.dir)}
    assert add["extra"] == {"MARKER": "m"}
    assert gc["env"] == {"CNI_COMMAND": "GC", "CNI_CONTAINERID": "", "CNI_NETNS": "", "CNI_IFNAME": "",
                         "CNI_ARGS": "", "CNI_PATH": str(fakes.dir)}


def test_add_failure_stops_chain_keeps_plugin_error_and_caches_nothing(fakes, rt):
    net, _ = two_chain(fakes)
    fakes.behave("first", ADD={"exit": 1, "stdout": {"code": 7, "msg": "bad subnet", "details": "10.0.0.0/33"}})
    with pytest.raises(ChainError) as ei:
        rt.add(net, ATT)
    err = ei.value
    assert (err.code, err.msg, err.details) == (7, "bad subnet", "10.0.0.0/33")
    assert str(err) == 'plugin type="first" failed (add): bad subnet; 10.0.0.0/33'
    assert [c["plugin"] for c in fakes.calls()] == ["first"]
    assert not rt.cached_attachments()
    assert rt.last.verb == "ADD" and len(rt.last.calls) == 1 and rt.last.calls[0].returncode == 1


def test_add_validates_attachment_before_running_anything(fakes, rt):
    net, _ = two_chain(fakes)
    cases = [(Attachment(""), 3), (Attachment("bad id"), 4), (Attachment("c", ifname="x" * 16), 4),
             (Attachment("c", ifname="a/b"), 4)]
    for att, code in cases:
        with pytest.raises(CNIError) as ei:
            rt.add(net, att)
        assert ei.value.code == code
    bad_name = netlist([{"type": "first"}], name="bad name")
    with pytest.raises(CNIError) as ei:
        rt.add(bad_name, ATT)
    assert ei.value.code == 7
    assert fakes.calls() == []


def test_missing_plugin_is_found_out_before_any_exec(fakes, rt):
    fakes.make("first")
    net = netlist([{"type": "first"}, {"type": "absent"}])
    with pytest.raises(CNIError, match='failed to find plugin "absent"'):
        rt.add(net, ATT)
    assert fakes.calls() == []


def test_result_null_is_empty_and_missing_version_defaults_to_config(fakes, rt):
    fakes.make("only", ADD={"stdout": "null"})
    out = rt.add(netlist([{"type": "only"}]), ATT)
    assert out.raw == {"cniVersion": "1.1.0"} and out.result.ips == []


def test_result_of_another_family_is_refused(fakes, rt):
    fakes.make("only", ADD={"result": {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/24"}]}})
    with pytest.raises(CNIError, match="cannot be read"):
        rt.add(netlist([{"type": "only"}]), ATT)


def test_empty_stdout_on_add_is_an_unmarshal_error(fakes, rt):
    fakes.make("only", ADD={"stdout": ""})
    with pytest.raises(CNIError, match="failed to unmarshal raw result") as ei:
        rt.add(netlist([{"type": "only"}]), ATT)
    assert ei.value.code == 6


# -- exec error interpretation (R3.6) and timeouts -----------------------------------------------
@pytest.mark.parametrize("behaviour, message", [
    ({"exit": 3}, "netplugin failed with no error message: exit status 3"),
    ({"exit": 1, "stderr": "boom"}, 'netplugin failed: "boom": exit status 1'),
    ({"exit": 1, "stdout": "not json"}, 'netplugin failed but error parsing its diagnostic message "not json"'),
])
def test_failure_without_error_object_is_synthesised_like_libcni(fakes, rt, behaviour, message):
    fakes.make("only", ADD=behaviour)
    with pytest.raises(CNIError) as ei:
        rt.add(netlist([{"type": "only"}]), ATT)
    assert ei.value.msg.startswith(message) and ei.value.code == 999


def test_exit_zero_is_success_whatever_stdout_says_for_del(fakes, rt):
    fakes.make("only", DEL={"stdout": "garbage"})
    rt.delete(netlist([{"type": "only"}]), ATT)


def test_timeout_kills_the_plugin(fakes, tmp_path):
    rt = Runtime([str(fakes.dir)], cache_dir=str(tmp_path / "c"), timeout=0.5)
    fakes.make("slow", ADD={"sleep": 30})
    with pytest.raises(CNIError, match="timed out") as ei:
        rt.add(netlist([{"type": "slow"}]), ATT)
    inv = ei.value.invocation
    assert inv.timed_out and inv.returncode is None and inv.wall_ms < 5000


# -- T127: the cache -------------------------------------------------------------------------------
def test_cache_file_path_modes_and_contents_match_libcni(fakes, rt, tmp_path):
    net, result = two_chain(fakes)
    rt.add(net, ATT)
    results = tmp_path / "cache" / "results"
    path = results / "net1-ctr1-eth0"
    assert sorted(os.listdir(results)) == ["net1-ctr1-eth0"]
    assert stat.S_IMODE(results.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = json.loads(path.read_text())
    assert list(entry) == ["kind", "containerId", "config", "ifName", "networkName", "netns", "cniArgs",
                           "capabilityArgs", "result"]
    assert entry["kind"] == "cniCacheV1"
    assert base64.b64decode(entry["config"]) == net.bytes
    assert (entry["containerId"], entry["ifName"], entry["networkName"], entry["netns"]) == \
        ("ctr1", "eth0", "net1", "/run/netns/x")
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]]
    assert entry["capabilityArgs"] == ATT.capability_args
    assert entry["result"] == result


def test_cache_keeps_conflist_bytes_verbatim(fakes, rt, tmp_path):
    fakes.make("only", ADD={"result": RESULT_A})
    data = b'{ "name": "net1",\n  "cniVersion": "1.1.0", "plugins": [ {"type": "only"} ] }\n'
    rt.add(conflist_from_bytes(data), ATT)
    entry = json.loads((tmp_path / "cache/results/net1-ctr1-eth0").read_text())
    assert base64.b64decode(entry["config"]) == data


# -- T124: DEL -----------------------------------------------------------------------------------------
def test_del_runs_in_reverse_with_cached_result_and_removes_cache(fakes, rt, tmp_path):
    net, result = two_chain(fakes)
    rt.add(net, ATT)
    fakes.clear()
    rt.delete(net, ATT)
    calls = fakes.calls("DEL")
    assert [c["plugin"] for c in calls] == ["second", "first"]
    assert all(c["config"]["prevResult"] == result for c in calls)
    assert calls[1]["config"]["runtimeConfig"] == {"portMappings": ATT.capability_args["portMappings"]}
    assert not (tmp_path / "cache/results/net1-ctr1-eth0").exists()


def test_del_failure_stops_and_keeps_the_cache(fakes, rt, tmp_path):
    net, _ = two_chain(fakes)
    rt.add(net, ATT)
    fakes.clear()
    fakes.behave("second", DEL={"exit": 1, "stdout": {"code": 11, "msg": "busy"}})
    with pytest.raises(CNIError) as ei:
        rt.delete(net, ATT)
    assert ei.value.code == 11 and "failed (delete)" in str(ei.value)
    assert [c["plugin"] for c in fakes.calls()] == ["second"]
    assert (tmp_path / "cache/results/net1-ctr1-eth0").exists()


def test_del_converts_cached_result_to_the_list_version(fakes, rt, tmp_path):
    net, _ = two_chain(fakes)
    rt.add(net, ATT)
    # the network was re-versioned while the container ran
    older = netlist([{"type": "first"}, {"type": "second"}], version="0.4.0")
    fakes.clear()
    rt.delete(older, ATT)
    prev = fakes.calls("DEL")[0]["config"]["prevResult"]
    assert prev["cniVersion"] == "0.4.0" and prev["ips"][0]["version"] == "4"


def test_del_without_cache_or_below_040_sends_no_prev_result(fakes, rt):
    net, _ = two_chain(fakes)
    rt.delete(net, ATT)  # never added
    net03, _ = two_chain(fakes, version="0.3.1")
    rt.add(net03, ATT)
    rt.delete(net03, ATT)
    assert all("prevResult" not in c["config"] for c in fakes.calls("DEL"))


def test_del_with_corrupt_cache_drops_it_and_still_deletes(fakes, rt, tmp_path):
    net, _ = two_chain(fakes)
    results = tmp_path / "cache/results"
    results.mkdir(parents=True)
    (results / "net1-ctr1-eth0").write_text("{not json")
    rt.delete(net, ATT)
    assert len(fakes.calls("DEL")) == 2 and not (results / "net1-ctr1-eth0").exists()


def test_legacy_cache_file_is_the_bare_result(fakes, rt, tmp_path):
    net, _ = two_chain(fakes)
    results = tmp_path / "cache/results"
    results.mkdir(parents=True)
    (results / "net1-ctr1-eth0").write_text(json.dumps(RESULT_A))
    rt.delete(net, ATT)
    assert fakes.calls("DEL")[0]["config"]["prevResult"] == RESULT_A


# -- CHECK and T125 -------------------------------------------------------------------------------------
def test_check_runs_in_order_with_cached_result(fakes, rt):
    net, result = two_chain(fakes)
    rt.add(net, ATT)
    fakes.clear()
    out = rt.check(net, ATT)
    calls = fakes.calls("CHECK")
    assert [c["plugin"] for c in calls] == ["first", "second"] and len(out.calls) == 2
    assert all(c["config"]["prevResult"] == result for c in calls)


def test_check_without_cache_sends_no_prev_result(fakes, rt):
    net, _ = two_chain(fakes)
    rt.check(net, ATT)
    assert all("prevResult" not in c["config"] for c in fakes.calls("CHECK"))


def test_check_refused_below_040(fakes, rt):
    net, _ = two_chain(fakes, version="0.3.1")
    with pytest.raises(CNIError, match='configuration version "0.3.1" does not support the CHECK command') as ei:
        rt.check(net, ATT)
    assert ei.value.code == 1 and fakes.calls() == []


def test_check_failure_stops_at_first_plugin(fakes, rt):
    net, _ = two_chain(fakes)
    fakes.behave("first", CHECK={"exit": 1, "stdout": {"code": 999, "msg": "eth0 missing"}})
    with pytest.raises(CNIError, match="eth0 missing"):
        rt.check(net, ATT)
    assert [c["plugin"] for c in fakes.calls()] == ["first"]


@pytest.mark.parametrize("value", [True, "true", "TRUE", "True"])
def test_disable_check_and_gc_run_nothing(fakes, rt, value):
    net, _ = two_chain(fakes, disableCheck=value, disableGC=value)
    rt.add(net, ATT)
    fakes.clear()
    assert rt.check(net, ATT).skipped == "disableCheck is true"
    assert rt.gc(net, []).skipped == "disableGC is true"
    assert fakes.calls() == [] and rt.cached_attachments()


@pytest.mark.parametrize("value", [False, "false", "FALSE"])
def test_disable_false_still_runs(fakes, rt, value):
    net, _ = two_chain(fakes, disableCheck=value, disableGC=value)
    rt.check(net, ATT)
    rt.gc(net, [])
    assert [c["command"] for c in fakes.calls()] == ["CHECK", "CHECK", "GC", "GC"]


@pytest.mark.parametrize("value", ["yes", 1, None, ["true"]])
def test_disable_check_with_another_value_is_a_config_error(value):
    with pytest.raises(CNIError, match="invalid disableCheck") as ei:
        netlist([{"type": "x"}], disableCheck=value)
    assert ei.value.code == 7


# -- GC -----------------------------------------------------------------------------------------------------
def _add_three(fakes: FakePlugins, rt: Runtime):
    net, _ = two_chain(fakes)
    other = netlist([{"type": "first"}, {"type": "second"}], name="net2")
    rt.add(net, Attachment("keep", "/run/netns/k"))
    rt.add(net, Attachment("stale", "/run/netns/s", "net1", args=(("K", "V"),),
                           capability_args={"portMappings": []}))
    rt.add(other, Attachment("stale", "/run/netns/s"))
    fakes.clear()
    return net


def test_gc_deletes_stale_attachments_then_gcs_every_plugin(fakes, rt, tmp_path):
    net = _add_three(fakes, rt)
    rt.gc(net, [("keep", "eth0")])
    calls = fakes.calls()
    assert [(c["command"], c["plugin"]) for c in calls] == [
        ("DEL", "second"), ("DEL", "first"), ("GC", "first"), ("GC", "second")]
    stale_del = calls[0]
    assert stale_del["env"]["CNI_CONTAINERID"] == "stale" and stale_del["env"]["CNI_IFNAME"] == "net1"
    assert stale_del["env"]["CNI_NETNS"] == "/run/netns/s" and stale_del["env"]["CNI_ARGS"] == "K=V"
    assert calls[1]["config"]["runtimeConfig"] == {"portMappings": []}
    expected = [{"containerID": "keep", "ifname": "eth0"}]
    for gc in calls[2:]:
        assert gc["config"]["cni.dev/valid-attachments"] == expected
        assert gc["config"]["cni.dev/attachments"] == expected
        assert "prevResult" not in gc["config"] and "runtimeConfig" not in gc["config"]
        assert gc["config"]["name"] == "net1" and gc["config"]["cniVersion"] == "1.1.0"
    assert sorted(os.listdir(tmp_path / "cache/results")) == ["net1-keep-eth0", "net2-stale-eth0"]


def test_gc_without_args_omits_the_keys_and_deletes_everything_cached(fakes, rt, tmp_path):
    net = _add_three(fakes, rt)
    rt.gc(net, None)
    gcs = fakes.calls("GC")
    assert len(fakes.calls("DEL")) == 4 and len(gcs) == 2
    assert all("cni.dev/valid-attachments" not in c["config"] for c in gcs)
    assert sorted(os.listdir(tmp_path / "cache/results")) == ["net2-stale-eth0"]


def test_gc_below_110_only_deletes_stale_attachments(fakes, rt):
    net, _ = two_chain(fakes, version="1.0.0")
    rt.add(net, Attachment("stale", "/run/netns/s"))
    fakes.clear()
    out = rt.gc(net, [])
    assert [c["command"] for c in fakes.calls()] == ["DEL", "DEL"] and "< 1.1.0" in out.skipped


def test_gc_keeps_going_and_reports_every_error(fakes, rt):
    net = _add_three(fakes, rt)
    fakes.behave("first", GC={"exit": 1, "stdout": {"code": 11, "msg": "locked"}},
                 DEL={"exit": 1, "stdout": {"code": 5, "msg": "disk"}})
    with pytest.raises(MultiError) as ei:
        rt.gc(net, [("keep", "eth0")])
    assert [e.code for e in ei.value.errors] == [5, 11] and ei.value.code == 5
    assert "failed to delete stale attachment stale net1" in str(ei.value)
    assert [(c["command"], c["plugin"]) for c in fakes.calls()] == [
        ("DEL", "second"), ("DEL", "first"), ("GC", "first"), ("GC", "second")]


# -- STATUS -------------------------------------------------------------------------------------------------
def test_status_skipped_below_110(fakes, rt):
    net, _ = two_chain(fakes, version="1.0.0")
    assert "has no STATUS" in rt.status(net).skipped and fakes.calls() == []


def test_status_stops_at_first_error_with_code_unchanged(fakes, rt):
    net, _ = two_chain(fakes)
    rt.status(net)
    assert [c["plugin"] for c in fakes.calls("STATUS")] == ["first", "second"]
    assert fakes.calls("STATUS")[0]["env"]["CNI_CONTAINERID"] == ""
    fakes.clear()
    fakes.behave("first", STATUS={"exit": 1, "stdout": {"code": 50, "msg": "no addresses left"}})
    with pytest.raises(CNIError) as ei:
        rt.status(net)
    assert ei.value.code == 50 and ei.value.msg == "no addresses left"
    assert [c["plugin"] for c in fakes.calls()] == ["first"]


# -- VERSION probe and validation (R5.6, R5.7) ------------------------------------------------------------
def test_version_probe_env_and_stdin(fakes, rt):
    fakes.make("p")
    assert rt.version_info("p") == tuple(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    (call,) = fakes.calls()
    assert call["stdin"] == '{"cniVersion":"1.1.0"}'
    assert call["env"] == {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "", "CNI_NETNS": "dummy",
                           "CNI_IFNAME": "dummy", "CNI_ARGS": "", "CNI_PATH": "dummy"}


def test_version_probe_ancient_plugin_and_020_without_list(fakes, rt):
    fakes.make("ancient", VERSION={"exit": 1, "stdout": {"code": 4, "msg": "unknown CNI_COMMAND: VERSION"}})
    fakes.make("old", VERSION={"stdout": {"cniVersion": "0.2.0"}})
    assert rt.version_info("ancient") == ("0.1.0",)
    assert rt.version_info("old") == ("0.1.0", "0.2.0")


def test_validate_reports_capabilities_and_unsupported_versions(fakes, rt):
    net, _ = two_chain(fakes)
    assert rt.validate(net) == frozenset({"portMappings"})
    fakes.behave("second", VERSION={"versions": ["0.4.0", "1.0.0"]})
    with pytest.raises(CNIError, match='plugin second does not support config version "1.1.0"') as ei:
        rt.validate(net)
    assert ei.value.code == 1


# -- timing and traces for the harness ----------------------------------------------------------------------
def test_failed_operation_carries_its_partial_outcome(fakes, rt):
    net, _ = two_chain(fakes)
    fakes.behave("second", ADD={"exit": 1, "stdout": {"code": 11, "msg": "later"}})
    with pytest.raises(CNIError) as ei:
        rt.add(net, ATT)
    out = ei.value.outcome
    assert out is rt.last and out.verb == "ADD" and out.result is None
    assert [(c.plugin_type, c.returncode) for c in out.calls] == [("first", 0), ("second", 1)]
    assert out.wall_ms >= sum(c.wall_ms for c in out.calls) > 0
    assert json.loads(out.calls[1].stdout) == {"code": 11, "msg": "later"}


def test_last_outcome_is_per_thread(fakes, rt):
    import threading

    net, _ = two_chain(fakes)
    rt.add(net, ATT)
    seen = {}
    worker = threading.Thread(target=lambda: seen.setdefault("verb", rt.last.verb))
    worker.start()
    worker.join()
    assert seen["verb"] == "" and rt.last.verb == "ADD"
