"""End-to-end jobs: configuration, runner, report."""
