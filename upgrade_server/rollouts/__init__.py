"""Staged rollouts: waves, health gates, automatic halts, maintenance windows, approval."""

# Connects the listener that keeps a halted rollout's part-way devices current (events.py).
from upgrade_server.rollouts import listeners as _listeners  # noqa: F401
