"""buildgraph (`bg`): a declarative, content-keyed build graph for ML work in Docker images."""

__version__ = "0.1.0"
__all__ = ["__version__"]
