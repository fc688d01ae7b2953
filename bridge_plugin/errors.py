"""The bridge plugin's own error codes (spec: >= 100 is free for plugins).

host-local uses 100-106; the bridge uses 120-139, so a runtime can tell them apart when IPAM
errors pass through the bridge with their own code. Spec codes are used where one fits: 3 (CNI_NETNS
does not exist), 4 (CNI_NETNS is not a network namespace), 5 (a sysctl write that matters failed),
7 (invalid config), 11 (transient: the kernel said EBUSY/EAGAIN, a link vanished under a concurrent
change, a wait timed out). 999 is left for exceptions nobody anticipated.
"""
from __future__ import annotations

from enum import IntEnum


class BridgeCode(IntEnum):
    CONTAINER_IFNAME_EXISTS = 120  # CNI_IFNAME already names a link in the container netns
    BRIDGE_NAME_TAKEN = 121  # a link that is not a bridge has the bridge's name
    BRIDGE_ADDRESS_CONFLICT = 122  # the bridge has another address and forceAddress is off
    KERNEL_FEATURE_MISSING = 123  # VLAN filtering: absent from the kernel or off on the existing bridge
    KERNEL_OPERATION_FAILED = 124  # a netlink/kernel call failed; msg names the object and the errno text
    IPAM_NO_IP_CONFIG = 125  # the IPAM delegate succeeded but returned no ips
    CHECK_MISMATCH = 126  # CHECK: the kernel state differs from prevResult
    DAD_FAILED = 127  # IPv6 duplicate address detection failed for a container address
    INJECTED_FAILURE = 139  # test seam PYCNI_TEST_FAIL_AT only; never seen in production
