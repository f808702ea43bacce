"""Runs that send nothing: stubbed answers, a mapping's test cases, dry runs of one saved event."""
