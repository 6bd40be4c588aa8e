"""Pure decisions for AgentWorkflow objects: the shape of a workflow's step graph."""
