"""host-local IPAM: a drop-in for the reference plugin, with the same reservations on disk."""
