"""Writes Optuna's RDB schema (the tables, indexes and PostgreSQL enum types that `optuna.storages.RDBStorage`
creates) as the SQL genlab runs to create a study database: `sqlite.sql` and `postgresql.sql` beside this file.

Made once with optuna 5.0.0 and SQLAlchemy 2.1.9 (`pip install optuna==5.0.0`), then committed; genlab never
runs Python. Run it again only when moving to a newer Optuna schema (and change SCHEMA_VERSION/ALEMBIC in
`schema.rs` with it)."""
import pathlib

import optuna
from optuna.storages._rdb import models
from sqlalchemy import Enum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

here = pathlib.Path(__file__).parent
tables = models.BaseModel.metadata.sorted_tables
header = f"-- Optuna {optuna.__version__} RDB schema, version {models.SCHEMA_VERSION}: written by make_schema.py; do not edit.\n"

for name, dialect in [("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())]:
    statements = []
    if name == "postgresql":
        enums = {}
        for table in tables:
            for column in table.columns:
                if isinstance(column.type, Enum):
                    enums[column.type.name] = column.type.enums
        for enum_name, values in enums.items():
            quoted = ", ".join(f"'{v}'" for v in values)
            statements.append(f"CREATE TYPE {enum_name} AS ENUM ({quoted})")
    for table in tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    statements.append("CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)")
    text = header + ";\n\n".join(statements) + ";\n"
    (here / f"{name}.sql").write_text(text)
    print(f"{name}.sql: {len(statements)} statements")
