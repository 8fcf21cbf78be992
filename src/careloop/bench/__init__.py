"""Benchmark workloads behind `careloop bench`: fixed seeds, scratch databases, JSON results.

A workload does real work through the product's own services and selectors, measures it,
measures the same work done by the plainest possible means in the same run (its *floors*),
and checks that the work was right. `harness` holds what every workload shares.
"""
