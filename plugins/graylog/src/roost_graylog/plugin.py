"""Hook implementations only: the exporter class is imported when a flow first uses it."""

from roost import LazyType, hookimpl


@hookimpl
def register_log_exporters(register):
    register(LazyType("io.kestra.plugin.ee.graylog.LogExporter", "roost_graylog.exporter:GraylogExporter"))
