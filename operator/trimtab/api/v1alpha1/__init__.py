"""trimtab.io/v1alpha1: AgentPool and AgentWorkflow."""

GROUP = "trimtab.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
