"""The API types: AgentPool and AgentWorkflow as pydantic models, and the CRD generator.

These models are the single source of the custom resources: the CRDs in crds/, the
API reference, the runtime's manifest parsing and the operator's view of a spec all
come from them. Pure: no Kubernetes client, no I/O.
"""
