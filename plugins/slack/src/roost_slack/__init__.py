"""Roost plugin for Slack Apps: Kestra's ``io.kestra.plugin.slack.app.*`` tasks and Events API trigger."""
