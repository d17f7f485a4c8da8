"""The Adaptive Resilience Genome: genes, genomes, mutation, fitness and evolution.

Import from the submodules (``pytest_rafael.genome.evolution`` ...); this package stays
thin so that the runtime (``pytest_rafael.resilience``) pays only for what it uses.
"""
