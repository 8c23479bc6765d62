"""Task plugins shipped with harness (installed as the `harness_tasks` package)."""
