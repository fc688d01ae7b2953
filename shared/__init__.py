"""The CNI core shared by pycni's plugins: requests, results, versions, errors, delegation.

Nothing here talks to netlink; plugin-specific side effects live in each plugin package.
"""
