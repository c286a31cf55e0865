"""Reliability campaign: fault-injection checks that report their figures (``-m reliability``)."""
