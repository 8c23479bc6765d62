"""`harness compare`: tables, scaling plots, significance between sizes and an HTML report.

Entry point: `harness.compare.command.compare` (imported lazily: plotting pulls in matplotlib).
"""
