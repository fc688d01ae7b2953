"""A private podman (CNI backend) that runs inside a network namespace the test made.

Everything podman touches is private to the test:
- its configuration comes only from a containers.conf in a temp dir (CONTAINERS_CONF); storage
  (--root, --runroot, vfs), events, locks and tmp live in that dir too;
- every podman command runs in one private mount namespace kept alive by a holder process: there
  /run/netns (where podman pins container namespaces) is a fresh tmpfs and /var/lib/cni (libcni's
  result cache) is a bind mount of a temp dir, so nothing lands in the machine's /run/netns or
  /var/lib/cni, and killing the holder drops whatever podman left pinned;
- its network namespace is a throw-away "host" namespace, so the bridge, the host-side veths and
  the masquerade rules the plugins create never touch the machine's root namespace;
- containers go under one cgroup parent (`/pycni-e2e-<random>`) removed at the end.

`nsenter --net` is used rather than `ip netns exec`, which remounts /sys and hides the cgroup
mounts runc needs (see notes/real-runtime.md).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace, create as create_netns, delete as delete_netns, unique
from tests.support.warm import stop_server

IMAGE = "localhost/pycni-busybox:latest"
APPLETS = ("sh", "ip", "ping", "cat", "sleep", "nc", "ls", "echo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CACHE_MOUNTPOINT = "/var/lib/cni"
# Several test processes may share the machine: the empty mount point is reference-counted with a
# shared flock, and the last one out removes it if one of them had to create it.
MOUNTPOINT_LOCK = "/tmp/pycni-e2e-varlibcni.lock"
MOUNTPOINT_MARKER = "/tmp/pycni-e2e-varlibcni.created"


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: if pytest itself is killed, the holder (and its private mounts) goes too."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def missing_tools() -> list[str]:
    needed = ("podman", "runc", "conmon", "nsenter", "unshare", "ip", "iptables-save")
    out = [t for t in needed if shutil.which(t) is None]
    if not Path("/bin/busybox").is_file() and shutil.which("busybox") is None:
        out.append("busybox (busybox-static)")
    return out


def build_image_tar(workdir: Path) -> Path:
    """A minimal root filesystem: Debian's static busybox plus the applets the test calls."""
    busybox = Path("/bin/busybox") if Path("/bin/busybox").is_file() else Path(shutil.which("busybox") or "")
    rootfs = workdir / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "run"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    tar = workdir / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True, capture_output=True)
    return tar


def containers_conf(workdir: Path, plugin_dir: Path, net_dir: Path, network: str) -> str:
    return f"""\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
pids_limit = 0

[network]
network_backend = "cni"
cni_plugin_dirs = ["{plugin_dir}"]
network_config_dir = "{net_dir}"
default_network = "{network}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{workdir / 'events.log'}"
runtime = "runc"
tmp_dir = "{workdir / 'tmp'}"
lock_type = "file"
"""


@dataclass
class Podman:
    workdir: Path
    plugin_dir: Path
    network: str
    subnet_prefix: str  # e.g. "10.231.7" for 10.231.7.0/24
    host: Namespace | None = None
    holder: subprocess.Popen[bytes] | None = None
    warm: bool = False  # run `pycni serve` in podman's mount namespace and hand the plugins to it
    server: subprocess.Popen[bytes] | None = None
    server_ns: Namespace | None = None
    cgroup_parent: str = field(default_factory=lambda: unique("pycni-e2e"))
    lock_fd: int | None = None
    log: list[str] = field(default_factory=list)

    # -- paths --------------------------------------------------------------------------------
    @property
    def net_dir(self) -> Path:
        return self.workdir / "net.d"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "ipam"

    @property
    def cni_cache(self) -> Path:
        return self.workdir / "cni-cache"

    @property
    def bridge(self) -> str:
        return f"pcb{self.network[-8:]}"

    @property
    def subnet(self) -> str:
        return f"{self.subnet_prefix}.0/24"

    @property
    def gateway(self) -> str:
        return f"{self.subnet_prefix}.1"

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for d in (self.net_dir, self.data_dir, self.cni_cache, self.workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": self.network,
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "dataDir": str(self.data_dir),
                         "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                         "routes": [{"dst": "0.0.0.0/0"}]},
            }],
        }
        (self.net_dir / f"{self.network}.conflist").write_text(json.dumps(conflist, indent=2))
        (self.workdir / "containers.conf").write_text(
            containers_conf(self.workdir, self.plugin_dir, self.net_dir, self.network))
        self.host = create_netns("pycni-e2eh")
        self._start_holder()
        if self.warm:
            self._start_server()

    @property
    def socket(self) -> Path:
        return self.workdir / "run" / "pycni.sock"

    def _start_server(self) -> None:
        """`pycni serve` in the holder's mount namespace (a caller in another one is declined) and in a
        network namespace of its own."""
        import sys

        assert self.holder is not None
        self.server_ns = create_netns("pycni-e2es")
        self.server = subprocess.Popen(
            ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", f"--net={self.server_ns.path}", "--",
             sys.executable, "-m", "shared.cli", "serve", "--socket", str(self.socket), "--workers", "2"],
            cwd=str(Path(__file__).resolve().parents[2]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if self.server.poll() is not None or time.monotonic() > deadline:
                err = self.server.stderr.read() if self.server.stderr else b""
                raise RuntimeError(f"pycni serve did not start: {err.decode(errors='replace')}")
            time.sleep(0.05)

    def _stop_server(self) -> list[str]:
        problems = []
        if self.server is not None and not stop_server(self.server):
            problems.append("pycni serve did not stop on SIGTERM")
        if self.server_ns is not None:
            delete_netns(self.server_ns)
        return problems

    def _start_holder(self) -> None:
        self._hold_mountpoint()
        script = (f"mount -t tmpfs -o mode=0755 tmpfs /run/netns && "
                  f"mount --bind {self.cni_cache} {CACHE_MOUNTPOINT} && echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       preexec_fn=_die_with_parent)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != b"ready":
            err = self.holder.stderr.read() if self.holder.stderr else b""
            raise RuntimeError(f"could not set up the private mount namespace: {err.decode(errors='replace')}")

    def stop(self) -> list[str]:
        """Remove everything, best effort; return what could not be removed."""
        problems: list[str] = []
        if self.holder is not None and self.holder.poll() is None and self.host is not None:
            res = self.podman("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
            if res.returncode != 0:
                problems.append(f"podman rm --all: {res.stderr.strip()}")
        problems += self._stop_server()
        if self.holder is not None:
            self.holder.send_signal(signal.SIGKILL)
            self.holder.wait(timeout=10)
            for stream in (self.holder.stdout, self.holder.stderr):
                if stream:
                    stream.close()
        problems += self._remove_cgroups()
        if self.host is not None:
            delete_netns(self.host)
        problems += self._release_mountpoint()
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    def _hold_mountpoint(self) -> None:
        """/var/lib/cni must exist to bind over it; create it (empty) only when missing."""
        self.lock_fd = os.open(MOUNTPOINT_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_SH)
        if not os.path.isdir(CACHE_MOUNTPOINT):
            Path(MOUNTPOINT_MARKER).touch()
            os.makedirs(CACHE_MOUNTPOINT, mode=0o700)

    def _release_mountpoint(self) -> list[str]:
        if self.lock_fd is None:
            return []
        problems = []
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # another test still uses it; the last one removes it
        else:
            if os.path.exists(MOUNTPOINT_MARKER):
                try:
                    os.rmdir(CACHE_MOUNTPOINT)
                    os.unlink(MOUNTPOINT_MARKER)
                except OSError as e:
                    problems.append(f"{CACHE_MOUNTPOINT} (created by this test): {e}")
        finally:
            os.close(self.lock_fd)
            self.lock_fd = None
        return problems

    def _remove_cgroups(self) -> list[str]:
        problems = []
        for parent in CGROUP_ROOT.glob(f"*/{self.cgroup_parent}"):
            deadline = time.monotonic() + 5
            while parent.exists():
                for child in sorted(parent.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                    try:
                        child.rmdir()
                    except OSError:
                        pass
                if not parent.exists() or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if parent.exists():
                problems.append(f"cgroup {parent} still exists")
        return problems

    # -- commands -----------------------------------------------------------------------------
    def podman(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self.host is not None and self.holder is not None
        argv = ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", f"--net={self.host.path}", "--",
                "podman", "--root", str(self.workdir / "root"), "--runroot", str(self.workdir / "runroot"),
                "--storage-driver", "vfs", *args]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "CONTAINERS_CONF": str(self.workdir / "containers.conf"), "HOME": str(self.workdir),
               "TMPDIR": str(self.workdir / "tmp"),
               # libcni passes its environment on to the plugins
               "PYCNI_SOCKET": str(self.socket) if self.warm else "off"}
        started = time.perf_counter()
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        self.log.append(f"podman {' '.join(args)} -> {res.returncode} in {time.perf_counter() - started:.2f}s"
                        + (f"\n  stderr: {res.stderr.strip()}" if res.stderr.strip() else ""))
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def import_image(self, tar: Path) -> None:
        self.podman("import", str(tar), IMAGE)

    def run(self, name: str, *extra: str) -> str:
        res = self.podman("run", "-d", "--name", name, "--network", self.network,
                          f"--cgroup-parent=/{self.cgroup_parent}", "--cap-add", "NET_RAW", *extra,
                          IMAGE, "sleep", "600")
        return res.stdout.strip()

    def exec(self, name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.podman("exec", name, *argv, check=check)

    def inspect(self, name: str) -> dict[str, Any]:
        data = json.loads(self.podman("inspect", "--format", "json", name).stdout)
        return data[0] if isinstance(data, list) else data

    def host_cmd(self, *argv: str) -> str:
        """A command in the test's host namespace (inspection only)."""
        assert self.host is not None
        return self.host.exec(list(argv), capture_output=True, text=True, check=True).stdout
