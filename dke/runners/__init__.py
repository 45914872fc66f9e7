"""Runners: run compiled objects here (local), on Kubernetes (kube), inside the Job (incluster)."""
