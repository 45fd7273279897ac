"""gflownet: learn samplers of compositional objects with probability proportional to a reward."""
__version__ = "0.1.0"
