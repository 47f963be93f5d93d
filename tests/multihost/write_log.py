"""Which host wrote each row of a job: PostgreSQL records it, so a stale write cannot hide.

Training is deterministic, so a stale run's curve point would be bit-identical to the
new run's and no comparison of values could tell it apart. Instead, row triggers on the
job's tables (installed in the test's own database, after the migrations) log every row
actually inserted, updated or deleted, with ``inet_client_addr()`` — the address of the
host whose connection did it. A fenced write changes no row, so it logs nothing.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

# Each table holding a job's state, and its column naming the job.
JOB_TABLES = {"jobs": "id", "curve_points": "job_id", "checkpoints": "job_id",
              "trained_models": "job_id"}  # fmt: skip

_INSTALL = [
    """
    CREATE TABLE row_writes (
        id bigserial PRIMARY KEY,
        client inet,
        table_name text NOT NULL,
        operation text NOT NULL,
        job_id text
    )
    """,
    """
    CREATE FUNCTION log_row_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO row_writes (client, table_name, operation, job_id)
        VALUES (inet_client_addr(), TG_TABLE_NAME, TG_OP,
                to_jsonb(COALESCE(NEW, OLD)) ->> TG_ARGV[0]);
        RETURN NULL;
    END $$
    """,
    *(
        f"CREATE TRIGGER log_row_writes AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION log_row_write('{column}')"
        for table, column in JOB_TABLES.items()
    ),
]


def install(engine: Engine) -> None:
    with engine.begin() as connection:
        for statement in _INSTALL:
            connection.execute(text(statement))


def mark(engine: Engine) -> int:
    """The latest row write so far; later writes have larger ids."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT coalesce(max(id), 0) FROM row_writes")).scalar())


def writes(engine: Engine, job_id: str, client: str, *, after: int = 0) -> int:
    """Rows of ``job_id`` written from the host at address ``client`` after ``mark``."""
    query = text(
        "SELECT count(*) FROM row_writes WHERE job_id = :job AND client = CAST(:client AS inet)"
        " AND id > :after"
    )
    with engine.connect() as connection:
        count = connection.execute(query, {"job": job_id, "client": client, "after": after})
        return int(count.scalar())
