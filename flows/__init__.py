"""Setup flows (create or update agents once) and runtime flows (run sessions)."""
