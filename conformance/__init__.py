"""A libcni-like runtime driver, its CLI, and a black-box CNI conformance harness."""
