"""Crowd quality control: answers, trust, aggregation, soft labels, redundancy, simulated crowds."""
