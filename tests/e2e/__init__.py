"""End-to-end tests with a real container runtime."""
