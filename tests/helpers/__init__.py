"""Helpers shared by the test modules (test modules never import each other):
the service in-process and as a process, the chains and anvil, the contracts,
and PostgreSQL servers."""
