"""Roost's AI plugin: Kestra's ``io.kestra.plugin.ai.agent.AIAgent`` with Langfuse observability."""
