"""Roost's Apache Beam plugin: RunPipeline (Beam YAML or a Python pipeline file) in a subprocess."""
