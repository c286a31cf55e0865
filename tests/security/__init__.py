"""Security tests: flow-run parameters are data (docs/security.md)."""
