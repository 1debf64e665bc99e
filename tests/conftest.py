"""Shared fixtures. Model builders live in their own modules, loaded as plugins."""

pytest_plugins = [
    "tests.fixtures_models",
    "tests.fixtures_tools",
]
