"""Pure decisions for AgentPools: desired objects, placement, scaling, status."""
