"""Roost JDBC plugin: Kestra's ``io.kestra.plugin.jdbc.<db>.Query`` and ``Queries`` tasks.

SQLite and DuckDB run in-process; PostgreSQL (psycopg 3) and MySQL/MariaDB (PyMySQL)
over the network. Task classes live in :mod:`roost_jdbc.tasks`.
"""

__version__ = "0.1.0"
