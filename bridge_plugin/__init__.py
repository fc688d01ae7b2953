"""The CNI `bridge` plugin: a Linux bridge, a veth pair per container, addressing from any IPAM plugin."""
