"""Agent providers, one module each, all behind lifeos.agents.api.AgentProvider."""
