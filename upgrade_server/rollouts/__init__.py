"""Staged rollouts: waves, health gates, automatic halts, maintenance windows, approval."""
