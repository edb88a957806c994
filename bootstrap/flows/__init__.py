"""Flows: phase trees (init, join, reset, upgrade) and multi-host plays.

A phase tree is declared once as data with ``bootstrap.flows.workflow.Phase``;
the CLI commands, ``--skip-phases`` and help text are derived from it.
"""
