"""Trimtab: run AI-agent workflows on Kubernetes as parallel DAGs over autoscaled worker pools."""

__version__ = "0.1.0.dev0"
