"""The environment: load, validate, layer and check one environment.yaml (pure, offline)."""
