"""Helpers and fixture trees for the agent's tests (tests/test_agent_*.py)."""
