"""AgentBudget decisions: which workflows a budget covers, what the workers enforce,
and the status, conditions and warnings its spend calls for. Pure: the handler gathers
the workflows and each window's figures and applies what these functions return."""
