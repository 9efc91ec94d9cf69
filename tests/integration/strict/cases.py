"""The strict-mode rule table, as data: what DSQL answers, and where that answer comes from.

``source`` names the evidence:

- ``rec:<file>#<case>``: a recording made on a real Aurora DSQL cluster (September 2026),
  published in the ``Dreamescaper/dsql-emulator`` repository,
  ``test/conformance/golden/<file>``; SQLSTATE and message are copied from it.
- ``rules:<id>``: that repository's rule file ``rules/dsql-2026.09.yaml`` (not a
  recording: the message is the emulator authors' word).
- ``doc:<page>``: the Aurora DSQL user guide says it is unsupported; DSQL's text is not
  recorded, so the message is ours (``guessed=True``) and only the SQLSTATE is asserted.
- ``toolkit:<file>``: ``awslabs/dsql-migration-toolkit`` (its source quotes DSQL's answers
  "confirmed live"); ``dialect:<file>``: ``aurora-dsql-sqlalchemy``'s tests, which run
  against a cluster.

A refused case runs twice: in autocommit (refused, and the session is not left in an
aborted transaction) and inside BEGIN (refused, and the next statement gets 25P02).
An accepted case (``sqlstate=None``) must run without error in autocommit. A case marked
``client=True`` is one of DSQL's forms PostgreSQL cannot parse (``CREATE INDEX ASYNC``), and
runs through the client-side rewrite (``StrictCursor``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    sql: str | tuple[str, ...]  # a tuple: statements run in order (accepted flows)
    sqlstate: str | None  # None: DSQL accepts it
    message: str | None
    source: str
    setup: tuple[str, ...] = ()
    in_txn: bool = True  # also check the effect inside an explicit transaction
    guessed: bool = False  # message not recorded: assert the SQLSTATE only
    min_server: int = 0  # PostgreSQL major version needed to parse the statement at all
    client: bool = False  # needs StrictCursor's rewrite of DSQL's ASYNC forms


PARENT = "CREATE TABLE baseline_parent (id uuid PRIMARY KEY, name text)"
SEED = ("INSERT INTO baseline_parent (id, name) VALUES "
        "('00000000-0000-0000-0000-0000000000aa', 'seed'), "
        "('00000000-0000-0000-0000-0000000000bb', 'tx')")
CHILD = ("CREATE TABLE baseline_child (id uuid PRIMARY KEY, "
         "parent_id uuid REFERENCES baseline_parent (id))")
CHILD_ROW = ("INSERT INTO baseline_child (id, parent_id) VALUES "
             "('00000000-0000-0000-0000-0000000000ee', '00000000-0000-0000-0000-0000000000aa')")
IDX = "CREATE TABLE baseline_idx (id uuid PRIMARY KEY, value text)"
BULK = "CREATE TABLE baseline_bulk (id int)"
ALTER = "CREATE TABLE baseline_alter (id int PRIMARY KEY, a text, b text)"
ALTER_FK = "CREATE TABLE baseline_alter_fk (id int PRIMARY KEY, parent_id uuid)"
PKADD = "CREATE TABLE baseline_alter_pkadd (id int, v int)"
FK_NOT_VALID = ("ALTER TABLE baseline_alter_fk ADD CONSTRAINT alter_fk FOREIGN KEY (parent_id) "
                "REFERENCES baseline_parent (id) NOT VALID")
#: DSQL's conflict at COMMIT, as the DAT401 tutorial recorded it on a cluster (the emulator's
#: recording, occ_conflict.json, has the older "change conflicts with another transaction
#: (OC000)": the text has changed over time, the SQLSTATE 40001 and "(OC000)" have not).
OCC_MESSAGE = "change conflicts with another transaction, please retry: (OC000)"
CACHE_TAIL = ("is not supported without an explicit cache size. please define CACHE greater "
              "than or equal to 65536 or equal to 1")


# The recording's tables for the LATERAL probes: the child's first column is bigint, the
# parent's key text (the mismatch DSQL's LEFT JOIN LATERAL error reports).
LAT = ("CREATE TABLE baseline_lat_parent (id text NOT NULL PRIMARY KEY)",
       "CREATE TABLE baseline_lat_child (id bigint NOT NULL PRIMARY KEY, parent_id text)",
       "INSERT INTO baseline_lat_parent (id) VALUES ('a')",
       "INSERT INTO baseline_lat_child (id, parent_id) VALUES (1, 'a')")
LAT_SELECT = "SELECT p.id, x.pid FROM baseline_lat_parent AS p "
LAT_ERROR = "attribute 1 of type baseline_lat_child has wrong type"
DOMAIN = "CREATE DOMAIN baseline_mood_domain AS text CHECK (VALUE IN ('sad', 'ok'))"
MULTI = "CREATE TABLE baseline_multi (id int PRIMARY KEY, a int)"
OCC_ROW = "SELECT id FROM baseline_parent WHERE id = '00000000-0000-0000-0000-0000000000aa' FOR "


def _refused(name, sql, sqlstate, message, source, setup=(), in_txn=True, guessed=False,
             client=False):
    return Case(name, sql, sqlstate, message, source, tuple(setup), in_txn, guessed,
                client=client)


def _type(name: str, decl: str, shown: str) -> Case:
    return _refused(f"type_unsupported_{name}", f"CREATE TABLE baseline_type_{name} (v {decl})",
                    "0A000", f"datatype {shown} not supported",
                    f"rec:types.json#type_unsupported_{name}")


REFUSED: list[Case] = [
    # --- statements (unsupported.json) ---
    _refused("truncate", "TRUNCATE TABLE baseline_parent", "0A000",
             "unsupported statement: Truncate", "rec:unsupported.json#truncate", [PARENT]),
    _refused("create_extension", "CREATE EXTENSION IF NOT EXISTS pgcrypto", "0A000",
             "unsupported statement: CreateExtension", "rec:unsupported.json#create_extension"),
    _refused("create_trigger",
             "CREATE TRIGGER baseline_trg AFTER INSERT ON baseline_parent "
             "EXECUTE FUNCTION baseline_fn()",
             "0A000", "CREATE TRIGGER not supported", "rec:unsupported.json#create_trigger",
             [PARENT]),
    _refused("create_database", "CREATE DATABASE baseline_other", "0A000",
             "unsupported statement: Createdb", "rec:unsupported.json#create_database",
             in_txn=False),  # PostgreSQL refuses CREATE DATABASE in a block before any hook
    _refused("temporary_table", "CREATE TEMPORARY TABLE baseline_temp (id int)", "0A000",
             "TEMPORARY or TEMP table not supported for CREATE TABLE",
             "rec:unsupported.json#temporary_table"),
    _refused("unlogged_table", "CREATE UNLOGGED TABLE baseline_unlogged (id int)", "0A000",
             "UNLOGGED table not supported for CREATE TABLE",
             "rec:unsupported.json#unlogged_table"),
    _refused("serial_column", "CREATE TABLE baseline_serial (id serial PRIMARY KEY)", "42704",
             'type "serial" does not exist', "rec:unsupported.json#serial_column"),
    _refused("materialized_view", "CREATE MATERIALIZED VIEW baseline_mv AS SELECT 1 AS x",
             "0A000", "unsupported statement: CreateTableAs",
             "rec:unsupported.json#materialized_view"),
    _refused("create_table_as", "CREATE TABLE baseline_ctas AS SELECT 1 AS x", "0A000",
             "unsupported statement: CreateTableAs", "rec:unsupported.json#create_table_as"),
    _refused("select_into", "SELECT 1 AS x INTO baseline_select_into", "0A000",
             "unsupported statement: CreateTableAs",
             "rec:unsupported.json#create_table_as (SELECT INTO is CREATE TABLE AS)"),
    _refused("enum_type", "CREATE TYPE baseline_mood AS ENUM ('sad', 'ok')", "0A000",
             "CREATE TYPE not supported", "rec:unsupported.json#enum_type"),
    _refused("composite_type", "CREATE TYPE baseline_pair AS (a int, b int)", "0A000",
             "unsupported statement: CompositeType", "rec:unsupported.json#composite_type"),
    _refused("range_type", "CREATE TYPE baseline_range AS RANGE (subtype = int4)", "0A000",
             "unsupported statement: CreateRange", "rec:unsupported.json#range_type"),
    _refused("tablespace", "CREATE TABLESPACE baseline_ts LOCATION '/tmp/baseline'", "0A000",
             "unsupported statement: CreateTableSpace", "rec:unsupported.json#tablespace",
             in_txn=False),
    _refused("foreign_table", "CREATE FOREIGN TABLE baseline_ft (id int) SERVER baseline_srv",
             "0A000", "unsupported statement: CreateForeignTable",
             "rec:unsupported.json#foreign_table"),
    _refused("vacuum", "VACUUM baseline_parent", "0A000", "unsupported VACUUM statement",
             "rec:unsupported.json#vacuum", [PARENT], in_txn=False),
    _refused("listen", "LISTEN baseline_chan", "0A000", "unsupported statement: Listen",
             "rec:unsupported.json#listen"),
    _refused("notify", "NOTIFY baseline_chan", "0A000", "unsupported statement: Notify",
             "rec:unsupported.json#notify"),
    _refused("unlisten", "UNLISTEN baseline_chan", "0A000", "unsupported statement: Unlisten",
             "rec:unsupported.json#unlisten"),
    _refused("alter_system", "ALTER SYSTEM SET work_mem = '4MB'", "0A000",
             "unsupported statement: AlterSystem", "rec:unsupported.json#alter_system",
             in_txn=False),
    _refused("create_function_plpgsql",
             "CREATE FUNCTION baseline_plpgsql() RETURNS int LANGUAGE plpgsql "
             "AS $$ BEGIN RETURN 1; END $$",
             "0A000", "CREATE FUNCTION with language plpgsql not supported",
             "rec:unsupported.json#create_function_plpgsql"),
    # --- transaction statements (transaction.json, isolation.json) ---
    _refused("savepoint", "SAVEPOINT baseline_sp", "0A000",
             "unsupported transaction statement: SAVEPOINT", "rec:transaction.json#savepoint"),
    _refused("rollback_to_savepoint", "ROLLBACK TO SAVEPOINT baseline_sp", "0A000",
             "unsupported transaction statement: ROLLBACK TO",
             "rec:transaction.json#rollback_to_savepoint"),
    _refused("release_savepoint", "RELEASE SAVEPOINT baseline_sp", "0A000",
             "unsupported transaction statement: RELEASE", "rules:release_savepoint"),
    _refused("set_transaction_read_only", "SET TRANSACTION READ ONLY", "0A000",
             'setting configuration parameter "TRANSACTION" not supported',
             "rec:transaction.json#read_only"),
    _refused("set_transaction_serializable", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
             "0A000", "Unsupported isolation level: SERIALIZABLE",
             "rec:isolation.json#set_transaction_serializable"),
    _refused("set_transaction_repeatable_read", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
             "0A000", 'setting configuration parameter "TRANSACTION" not supported',
             "rec:isolation.json#set_transaction_repeatable_read"),
    _refused("begin_serializable", "BEGIN ISOLATION LEVEL SERIALIZABLE", "0A000",
             "Unsupported isolation level: SERIALIZABLE", "rec:isolation.json#begin_serializable",
             in_txn=False),
    _refused("set_default_isolation", "SET default_transaction_isolation = 'repeatable read'",
             "0A000",
             'setting configuration parameter "default_transaction_isolation" not supported',
             "rec:isolation.json#set_default_isolation"),
    _refused("set_transaction_isolation_guc", "SET transaction_isolation = 'repeatable read'",
             "0A000", 'setting configuration parameter "transaction_isolation" not supported',
             "rules:set_isolation (DSQL names the parameter set, as recorded for the others)",
             guessed=True),
    _refused("set_session_characteristics",
             "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", "0A000",
             "Unsupported isolation level: SERIALIZABLE",
             "rec:isolation.json#set_transaction_serializable (same clause)"),
    # --- types (types.json, enum.json) ---
    *[_type(n, d, s) for n, d, s in [
        ("money", "money", "money"), ("xml", "xml", "xml"), ("inet", "inet", "inet"),
        ("cidr", "cidr", "cidr"), ("macaddr", "macaddr", "macaddr"), ("point", "point", "point"),
        ("line", "line", "line"), ("lseg", "lseg", "lseg"), ("box", "box", "box"),
        ("path", "path", "path"), ("polygon", "polygon", "polygon"),
        ("circle", "circle", "circle"), ("tsvector", "tsvector", "tsvector"),
        ("tsquery", "tsquery", "tsquery"), ("int4range", "int4range", "int4range"),
        ("tsrange", "tsrange", "tsrange"), ("bit_8", "bit(8)", "bit"),
        ("varbit_8", "varbit(8)", "bit varying"), ("pg_lsn", "pg_lsn", "pg_lsn"),
        ("int", "int[]", "integer[]"), ("text", "text[]", "text[]"),
    ]],
    _refused("enum_alter_add_value", "ALTER TYPE baseline_mood ADD VALUE 'meh'", "0A000",
             "ALTER TYPE not supported", "rec:enum.json#enum_alter_add_value"),
    _refused("enum_alter_rename", "ALTER TYPE baseline_mood RENAME TO baseline_mood_renamed",
             "0A000", "unsupported object in RENAME statement", "rec:enum.json#enum_alter_rename"),
    _refused("enum_drop_if_exists", "DROP TYPE IF EXISTS baseline_mood", "0A000",
             "unsupported object in DROP statement", "rec:enum.json#enum_drop_if_exists"),
    _refused("enum_column_undefined", "CREATE TABLE baseline_enum_col (m baseline_mood)", "42704",
             'type "baseline_mood" does not exist', "rec:enum.json#enum_column_undefined"),
    _refused("enum_cast_undefined", "SELECT 'sad'::baseline_mood", "42704",
             'type "baseline_mood" does not exist', "rec:enum.json#enum_cast_undefined"),
    # --- sequences and identity (supported.json, alters.json, backlog.json) ---
    _refused("create_sequence", "CREATE SEQUENCE baseline_seq", "0A000",
             f"CREATE SEQUENCE {CACHE_TAIL}", "rec:supported.json#create_sequence"),
    # An explicit CACHE DSQL does not take is a data error quoting it (identity columns and
    # sequences alike). SQLSTATE: PostgreSQL's for the check whose text DSQL changed
    # ("CACHE (%s) must be greater than zero", 22023); not recorded.
    _refused("create_sequence_small_cache", "CREATE SEQUENCE baseline_seq3 CACHE 100", "22023",
             "CACHE (100) must be greater than or equal to 65536 or equal to 1",
             "toolkit:src/dsql_migrator/core/converter.py (_IDENTITY_CACHE_SIZE: "
             "CACHE 100 \"confirmed live\"); SQLSTATE PostgreSQL's"),
    _refused("identity_small_cache",
             "CREATE TABLE baseline_identity_c (id bigint GENERATED BY DEFAULT AS IDENTITY "
             "(CACHE 100) PRIMARY KEY)", "22023",
             "CACHE (100) must be greater than or equal to 65536 or equal to 1",
             "toolkit:src/dsql_migrator/core/converter.py (an identity primary key, CACHE 100)"),
    # Sequences are bigint only (user guide, CREATE SEQUENCE: "where data_type is BIGINT");
    # DECIMAL is a data error "sequence type must be bigint" (the dialect's test against a
    # cluster). integer: the same check, by the guide; its answer is not recorded.
    _refused("create_sequence_as_decimal", "CREATE SEQUENCE baseline_seq_dec CACHE 1 AS decimal",
             "22023", "sequence type must be bigint",
             "dialect:test/test_sequence.py#test_unsupported_decimal_seq (DataError)"),
    _refused("create_sequence_as_integer", "CREATE SEQUENCE baseline_seq_int CACHE 1 AS integer",
             "22023", "sequence type must be bigint",
             "doc:create-sequence-syntax-support (data_type is BIGINT); text as for DECIMAL"),
    # At most 8 key columns in a primary key or an index (user guide, quotas; the toolkit's
    # _DSQL_MAX_PK_COLUMNS: "54011").
    _refused("primary_key_nine_columns",
             "CREATE TABLE baseline_pk9 (c1 int, c2 int, c3 int, c4 int, c5 int, c6 int, c7 int, "
             "c8 int, c9 int, PRIMARY KEY (c1, c2, c3, c4, c5, c6, c7, c8, c9))", "54011",
             "more than 8 column keys in an index are not supported",
             "doc:CHAP_quotas (database limits); toolkit:src/dsql_migrator/core/converter.py"),
    _refused("index_nine_columns",
             "CREATE INDEX ASYNC baseline_idx9 ON baseline_wide (c1, c2, c3, c4, c5, c6, c7, c8, "
             "c9)", "54011", "more than 8 column keys in an index are not supported",
             "doc:CHAP_quotas (database limits)",
             ["CREATE TABLE baseline_wide (id int PRIMARY KEY, c1 int, c2 int, c3 int, c4 int, "
              "c5 int, c6 int, c7 int, c8 int, c9 int)"], client=True),
    # numeric: DSQL's limit was 38 and is now PostgreSQL's own, 1000 (user guide, supported
    # data types; the toolkit re-confirmed it live), refused with PostgreSQL's text.
    _refused("numeric_precision_1001", "CREATE TABLE baseline_num (v numeric(1001, 0))",
             "22023", "NUMERIC precision 1001 must be between 1 and 1000",
             "toolkit:src/dsql_migrator/core/assessor.py (_MAX_NUMERIC_PRECISION, confirmed "
             "live); doc:working-with-postgresql-compatibility-supported-data-types"),
    # asyncpg's pool reset sends UNLISTEN *: the statement DSQL refuses (unsupported.json#
    # unlisten records UNLISTEN <channel>; * is the same statement).
    _refused("unlisten_all", "UNLISTEN *", "0A000", "unsupported statement: Unlisten",
             "rec:unsupported.json#unlisten (the same statement, every channel)"),
    _refused("identity_column",
             "CREATE TABLE baseline_identity (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "value text)", "0A000", f"identity column {CACHE_TAIL}",
             "rec:supported.json#identity_column"),
    _refused("identity_integer",
             "CREATE TABLE baseline_identity_int (id integer GENERATED BY DEFAULT AS IDENTITY "
             "(CACHE 1) PRIMARY KEY)", "0A000",
             "datatype integer not supported, identity column type must be bigint",
             "rec:supported.json#identity_integer"),
    _refused("identity_smallint",
             "CREATE TABLE baseline_identity_small (id smallint GENERATED BY DEFAULT AS IDENTITY "
             "(CACHE 1) PRIMARY KEY)", "0A000",
             "datatype smallint not supported, identity column type must be bigint",
             "rec:supported.json#identity_smallint"),
    # --- ALTER TABLE (alters.json, backlog.json) ---
    _refused("alter_add_pk_constraint",
             "ALTER TABLE baseline_alter_pkadd ADD CONSTRAINT baseline_pkadd_pk PRIMARY KEY (id)",
             "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement",
             "rec:alters.json#alter_add_pk_constraint", [PKADD]),
    _refused("alter_add_unique_constraint",
             "ALTER TABLE baseline_alter_pkadd ADD CONSTRAINT baseline_pkadd_uq UNIQUE (v)",
             "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement",
             "rec:alters.json#alter_add_unique_constraint", [PKADD]),
    _refused("alter_add_identity_integer",
             "ALTER TABLE baseline_alter ADD COLUMN seq integer GENERATED BY DEFAULT AS IDENTITY "
             "(CACHE 1)", "0A000", "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:alters.json#alter_add_identity_integer", [ALTER]),
    _refused("alter_drop_pk_column", "ALTER TABLE baseline_alter DROP COLUMN id", "0A000",
             "cannot drop primary key column id", "rec:alters.json#alter_drop_pk_column", [ALTER]),
    _refused("alter_add_fk_without_not_valid",
             "ALTER TABLE baseline_alter_fk ADD CONSTRAINT alter_fk2 FOREIGN KEY (parent_id) "
             "REFERENCES baseline_parent (id)", "0A000",
             "unsupported ALTER TABLE ADD CONSTRAINT statement",
             "rec:alters.json#alter_add_fk_without_not_valid", [PARENT, ALTER_FK]),
    _refused("alter_add_check_without_not_valid",
             "ALTER TABLE baseline_alter ADD CONSTRAINT alter_chk2 CHECK (a IS NOT NULL)", "0A000",
             "unsupported ALTER TABLE ADD CONSTRAINT statement",
             "rec:alters.json#alter_add_check_without_not_valid", [ALTER]),
    _refused("alter_validate_constraint_sync",
             "ALTER TABLE baseline_alter_fk VALIDATE CONSTRAINT alter_fk", "0A000",
             "unsupported ALTER TABLE VALIDATE CONSTRAINT statement",
             "rec:alters.json#alter_validate_constraint_sync", [PARENT, ALTER_FK, FK_NOT_VALID]),
    _refused("alter_add_column_unsupported_type",
             "ALTER TABLE baseline_alter ADD COLUMN bad_money money", "0A000",
             "datatype money not supported", "rec:alters.json#alter_add_column_unsupported_type",
             [ALTER]),
    _refused("alter_add_column_array", "ALTER TABLE baseline_alter ADD COLUMN bad_array text[]",
             "0A000", "datatype text[] not supported", "rec:alters.json#alter_add_column_array",
             [ALTER]),
    _refused("alter_add_column_serial", "ALTER TABLE baseline_alter ADD COLUMN bad_serial serial",
             "42704", 'type "serial" does not exist', "rec:alters.json#alter_add_column_serial",
             [ALTER]),
    _refused("alter_column_type_unsupported", "ALTER TABLE baseline_alter ALTER COLUMN a TYPE xml",
             "0A000", "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement",
             "rec:alters.json#alter_column_type_unsupported", [ALTER]),
    _refused("alter_column_type_supported",
             "ALTER TABLE baseline_alter ALTER COLUMN a TYPE varchar(20)", "0A000",
             "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement",
             "rec:alters.json#alter_column_type_supported", [ALTER]),
    _refused("alter_add_identity_bigint",
             "ALTER TABLE baseline_alter ADD COLUMN seq2 bigint GENERATED BY DEFAULT AS IDENTITY "
             "(CACHE 1)", "0A000", "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:backlog.json#alter_add_identity_bigint", [ALTER]),
    _refused("alter_add_column_not_null",
             "ALTER TABLE baseline_alter ADD COLUMN nn int NOT NULL DEFAULT 0", "0A000",
             "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:backlog.json#alter_add_column_not_null", [ALTER]),
    _refused("alter_add_column_default", "ALTER TABLE baseline_alter ADD COLUMN df int DEFAULT 7",
             "0A000", "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:backlog.json#alter_add_column_default", [ALTER]),
    _refused("alter_add_column_check",
             "ALTER TABLE baseline_alter ADD COLUMN ck int CHECK (ck > 0)", "0A000",
             "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:backlog.json#alter_add_column_check", [ALTER]),
    _refused("alter_add_column_unique", "ALTER TABLE baseline_alter ADD COLUMN uq int UNIQUE",
             "0A000", "ALTER TABLE ADD COLUMN with constraint not supported",
             "rec:backlog.json#alter_add_column_unique", [ALTER]),
    # --- indexes (index.json) ---
    _refused("create_index_sync", "CREATE INDEX baseline_idx_value ON baseline_idx (value)",
             "0A000", "unsupported mode. please use CREATE INDEX ASYNC.",
             "rec:index.json#create_index_sync", [IDX]),
    _refused("create_unique_index_sync",
             "CREATE UNIQUE INDEX baseline_idx_uvalue ON baseline_idx (value)", "0A000",
             "unsupported mode. please use CREATE INDEX ASYNC.",
             "rec:index.json#create_index_sync (UNIQUE alike)", [IDX]),
    _refused("create_index_async_qualified",
             "CREATE INDEX ASYNC public.baseline_qualified_idx ON baseline_idx (value)", "42601",
             'syntax error at or near "."', "rec:index.json#create_index_async_qualified", [IDX],
             client=True),
    _refused("sys_wait_for_job", "SELECT sys.wait_for_job((SELECT job_id FROM sys.jobs LIMIT 1))",
             "42809", "sys.wait_for_job(text) is a procedure", "rec:index.json#sys_wait_for_job"),
    _refused("sys_call_wait_for_job",
             "CALL sys.wait_for_job((SELECT job_id FROM sys.jobs LIMIT 1))",
             "0A000", "cannot use subquery in CALL argument",
             "rec:index.json#sys_call_wait_for_job"),
    _refused("sys_call_wait_for_job_literal", "CALL sys.wait_for_job('no-such-job')", "22P02",
             "Unable to convert text to UUID", "rec:index.json#sys_call_wait_for_job_literal"),
    # --- queries (queries.json, environment.json) ---
    _refused("q_tablesample", "SELECT name FROM baseline_parent TABLESAMPLE SYSTEM (1)", "0A000",
             "TABLESAMPLE clause not supported", "rec:queries.json#q_tablesample", [PARENT]),
    _refused("q_geom_line", "SELECT line('{1,2,3}')", "0A000", "datatype line not supported",
             "rec:queries.json#q_geom_line"),
    _refused("q_geom_circle", "SELECT circle('<(0,0),1>'::text)", "0A000",
             "datatype circle not supported", "rec:queries.json#q_geom_circle"),
    _refused("q_fulltext_to_tsvector", "SELECT to_tsvector('english', 'hello world')", "42704",
             'text search configuration "english" does not exist',
             "rec:queries.json#q_fulltext_to_tsvector"),
    _refused("q_fulltext_to_tsquery", "SELECT to_tsquery('english', 'hello & world')", "42704",
             'text search configuration "english" does not exist',
             "rec:queries.json#q_fulltext_to_tsquery"),
    _refused("q_fulltext_websearch", "SELECT websearch_to_tsquery('english', 'hello world')",
             "42704", 'text search configuration "english" does not exist',
             "rec:queries.json#q_fulltext_websearch"),
    _refused("q_fulltext_match",
             "SELECT 1 WHERE to_tsvector('english', 'a') @@ to_tsquery('english', 'a')", "42704",
             'text search configuration "english" does not exist',
             "rec:queries.json#q_fulltext_match"),
    _refused("env_lc_collate", "SHOW lc_collate", "42704",
             'unrecognized configuration parameter "lc_collate"',
             "rec:environment.json#env_lc_collate"),
    _refused("q_group_by_all", "SELECT name, count(*) FROM baseline_parent GROUP BY ALL", "42601",
             "syntax error at end of input", "rec:queries.json#q_group_by_all", [PARENT]),
    _refused("q_merge",
             "MERGE INTO baseline_idx t USING baseline_parent s ON t.id = "
             "'00000000-0000-0000-0000-0000000000a1' WHEN MATCHED THEN UPDATE SET value = 'x'",
             "0A000", "unsupported statement type: MERGE", "rec:queries.json#q_merge",
             [PARENT, IDX]),
    # DSQL's LEFT JOIN LATERAL defect: an outer column in the subquery's output is read from
    # the subquery's own table (the recording's authors track it as a known gap, not a rule).
    _refused("q_lateral_left_no_outer_where",
             f"{LAT_SELECT}LEFT JOIN LATERAL (SELECT p.id AS pid FROM baseline_lat_child AS c) "
             "AS x ON TRUE", "42804", LAT_ERROR, "rec:queries.json#q_lateral_left_no_outer_where",
             LAT),
    _refused("q_lateral_left_outer_ref",
             f"{LAT_SELECT}LEFT JOIN LATERAL (SELECT p.id AS pid FROM baseline_lat_child AS c "
             "WHERE p.id = c.parent_id) AS x ON TRUE", "42804", LAT_ERROR,
             "rec:queries.json#q_lateral_left_outer_ref", LAT),
    _refused("q_lateral_left_outer_ref_cast",
             f"{LAT_SELECT}LEFT JOIN LATERAL (SELECT length(p.id)::bigint AS pid FROM "
             "baseline_lat_child AS c WHERE p.id = c.parent_id) AS x ON TRUE", "42804", LAT_ERROR,
             "rec:queries.json#q_lateral_left_outer_ref_cast", LAT),
    _refused("occ_for_share", OCC_ROW + "SHARE", "0A000",
             "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
             "rec:occ.json#occ_for_share", [PARENT, SEED]),
    _refused("occ_for_no_key_update", OCC_ROW + "NO KEY UPDATE", "0A000",
             "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
             "rec:occ.json#occ_for_no_key_update", [PARENT, SEED]),
    # --- errors PostgreSQL raises itself, recorded as DSQL's too ---
    _refused("foreign_key_violation",
             "INSERT INTO baseline_child (id, parent_id) VALUES "
             "('00000000-0000-0000-0000-0000000000ff', '00000000-0000-0000-0000-0000000000ff')",
             "23503", 'insert or update on table "baseline_child" violates foreign key constraint '
             '"baseline_child_parent_id_fkey"', "rec:supported.json#foreign_key_violation",
             [PARENT, CHILD]),
    _refused("enum_domain_violation", "INSERT INTO baseline_enum_t (id, m) VALUES (1, 'bogus')",
             "23514", 'value for domain baseline_mood_domain violates check constraint '
             '"baseline_mood_domain_check"', "rec:enum.json#enum_domain_violation",
             [DOMAIN, "CREATE TABLE baseline_enum_t (id int, m baseline_mood_domain)"]),
    _refused("enum_check_violation",
             "INSERT INTO baseline_enum_check_v (id, m) VALUES (1, 'bogus')", "23514",
             'new row for relation "baseline_enum_check_v" violates check constraint '
             '"baseline_enum_check_v_m_check"', "rec:enum.json#enum_check_violation",
             ["CREATE TABLE baseline_enum_check_v (id int, m text CHECK (m IN ('sad', 'ok')))"]),
    # --- multi-statement queries (multi_statement.json) ---
    _refused("multi_ddl_then_async_index",
             "CREATE TABLE baseline_multi_d (id int); "
             "CREATE INDEX ASYNC baseline_multi_d_idx ON baseline_multi_d (id)", "0A000",
             "multiple ddl statements not supported in a transaction",
             "rec:multi_statement.json#multi_ddl_then_async_index", client=True),
    _refused("for_share", "SELECT * FROM baseline_parent FOR SHARE", "0A000",
             "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
             "rules:unsupported_locking; doc: FOR SHARE refused", [PARENT]),
    _refused("for_no_key_update", "SELECT * FROM baseline_parent FOR NO KEY UPDATE", "0A000",
             "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
             "rules:unsupported_locking", [PARENT]),
    _refused("merge",
             "MERGE INTO baseline_parent p USING baseline_parent q ON p.id = q.id "
             "WHEN MATCHED THEN DO NOTHING", "0A000", "unsupported statement type: MERGE",
             "rules:merge", [PARENT]),
    # --- documented, DSQL's text not recorded ---
    _refused("partitioned_table",
             "CREATE TABLE baseline_part (id int, k int) PARTITION BY RANGE (k)", "0A000",
             None, "doc:working-with-postgresql-compatibility-unsupported-features (PARTITION)",
             guessed=True),
    _refused("inherits", "CREATE TABLE baseline_inh (x int) INHERITS (baseline_parent)", "0A000",
             None, "doc:working-with-postgresql-compatibility-unsupported-features (INHERITS)",
             [PARENT], guessed=True),
    _refused("do_block", "DO $$ BEGIN PERFORM 1; END $$", "0A000", None,
             "doc: functions only in SQL; PL/pgSQL unsupported", guessed=True),
]

IDX_ROW = ("INSERT INTO baseline_idx (id, value) VALUES "
           "('00000000-0000-0000-0000-0000000000a1', 'v1')")


def _ok(name, sql, source, setup=(), min_server=0, client=False):
    return Case(name, sql, None, None, source, tuple(setup), min_server=min_server,
                client=client)


Q = [PARENT, SEED, CHILD, CHILD_ROW]

ACCEPTED: list[Case] = [
    _ok("domain_type", "CREATE DOMAIN baseline_domain AS int", "rec:unsupported.json#domain_type"),
    _ok("create_function_sql",
        "CREATE FUNCTION baseline_fn() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        "rec:unsupported.json#create_function"),
    _ok("begin_repeatable_read", ("BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT 1", "COMMIT"),
        "rec:isolation.json#begin_repeatable_read"),
    _ok("commit", ("BEGIN", "INSERT INTO baseline_parent (id, name) VALUES "
                   "('00000000-0000-0000-0000-0000000000cc', 'tx')", "COMMIT"),
        "rec:transaction.json#commit", [PARENT]),
    _ok("types_supported_columns",
        "CREATE TABLE baseline_types_ok (c_smallint smallint, c_integer integer, "
        "c_bigint bigint, c_real real, c_double double precision, c_numeric numeric, "
        "c_numeric_ps numeric(18,6), c_decimal decimal(10,2), c_char character(10), "
        "c_varchar character varying(20), c_bpchar bpchar(5), c_text text, c_date date, "
        "c_time time, c_timetz time with time zone, c_timestamp timestamp, "
        "c_timestamptz timestamp with time zone, c_interval interval, c_boolean boolean, "
        "c_bytea bytea, c_uuid uuid, c_json json, c_jsonb jsonb)",
        "rec:types.json#types_supported_columns"),
    _ok("types_alias_columns",
        "CREATE TABLE baseline_types_alias (c_int2 int2, c_int4 int4, c_int8 int8, "
        "c_float4 float4, c_float8 float8, c_bool bool, c_varchar varchar(5), c_char char(5), "
        "c_dec dec, c_timetz timetz, c_timestamptz timestamptz)",
        "rec:types.json#types_alias_columns"),
    _ok("types_runtime_array", "SELECT string_to_array('1,2,3', ',')",
        "rec:types.json#types_runtime_array"),
    _ok("types_runtime_inet", "SELECT '127.0.0.1'::inet", "rec:types.json#types_runtime_inet"),
    _ok("types_runtime_json_ops", "SELECT '{\"a\":1}'::jsonb ->> 'a'",
        "rec:types.json#types_runtime_json_ops"),
    _ok("enum_domain_create",
        "CREATE DOMAIN baseline_mood_domain AS text CHECK (VALUE IN ('sad', 'ok'))",
        "rec:enum.json#enum_domain_create"),
    _ok("enum_check_create",
        "CREATE TABLE baseline_enum_check (id int, m text CHECK (m IN ('sad', 'ok')))",
        "rec:enum.json#enum_check_create"),
    _ok("alter_drop_column", "ALTER TABLE baseline_alter DROP COLUMN b",
        "rec:alters.json#alter_drop_column", [ALTER]),
    _ok("alter_add_column", "ALTER TABLE baseline_alter ADD COLUMN c text",
        "rec:alters.json#alter_add_column", [ALTER]),
    _ok("alter_add_column_storage", "ALTER TABLE baseline_alter ADD COLUMN d text STORAGE PLAIN",
        "rec:alters.json#alter_add_column_storage", [ALTER], min_server=16),
    _ok("alter_set_storage", "ALTER TABLE baseline_alter ALTER COLUMN a SET STORAGE PLAIN",
        "rec:alters.json#alter_set_storage", [ALTER]),
    _ok("alter_add_fk_not_valid", FK_NOT_VALID, "rec:alters.json#alter_add_fk_not_valid",
        [PARENT, ALTER_FK]),
    _ok("alter_add_check_not_valid",
        "ALTER TABLE baseline_alter ADD CONSTRAINT alter_chk CHECK (a IS NOT NULL) NOT VALID",
        "rec:alters.json#alter_add_check_not_valid", [ALTER]),
    _ok("create_view", "CREATE VIEW baseline_v AS SELECT 1 AS x", "rec:supported.json#create_view"),
    _ok("create_sequence_cached", "CREATE SEQUENCE baseline_seq2 CACHE 65536",
        "rec:supported.json#create_sequence_cached"),
    _ok("create_sequence_cache_one", "CREATE SEQUENCE baseline_seq_one CACHE 1",
        "rec:supported.json#create_sequence_cache_one"),
    _ok("create_sequence_as_bigint", "CREATE SEQUENCE baseline_seq_big CACHE 65536 AS bigint",
        "doc:create-sequence-syntax-support (data_type is BIGINT)"),
    _ok("primary_key_eight_columns",
        "CREATE TABLE baseline_pk8 (c1 int, c2 int, c3 int, c4 int, c5 int, c6 int, c7 int, "
        "c8 int, PRIMARY KEY (c1, c2, c3, c4, c5, c6, c7, c8))", "doc:CHAP_quotas (8 columns)"),
    _ok("numeric_precision_40", "CREATE TABLE baseline_num40 (v numeric(40, 10))",
        "toolkit:src/dsql_migrator/core/assessor.py (numeric(40,10) migratable; max 1000)"),
    _ok("current_session_id", "SELECT sys.current_session_id()",
        "an ORM adapter's pool and the DSQL connectors' tests call it; text"),
    _ok("create_schema", "CREATE SCHEMA baseline_schema", "rec:supported.json#create_schema"),
    _ok("show_transaction_isolation", "SHOW transaction_isolation",
        "rec:supported.json#show_transaction_isolation"),
    _ok("insert_returning",
        "INSERT INTO baseline_idx (id, value) VALUES ('00000000-0000-0000-0000-0000000000dd', "
        "'v1') ON CONFLICT (id) DO NOTHING RETURNING value",
        "rec:supported.json#insert_returning", [IDX]),
    _ok("update_row", "UPDATE baseline_idx SET value = 'v2' WHERE id = "
        "'00000000-0000-0000-0000-0000000000a1'", "rec:supported.json#update_row", [IDX, IDX_ROW]),
    _ok("delete_row", "DELETE FROM baseline_idx WHERE id = '00000000-0000-0000-0000-0000000000a1'",
        "rec:supported.json#delete_row", [IDX, IDX_ROW]),
    _ok("deferrable_foreign_key",
        "CREATE TABLE baseline_deferred (id int PRIMARY KEY, parent_id uuid REFERENCES "
        "baseline_parent (id) DEFERRABLE INITIALLY DEFERRED)",
        "rec:supported.json#deferrable_foreign_key", [PARENT]),
    _ok("drop_table", "DROP TABLE baseline_bulk", "rec:supported.json#drop_table", [BULK]),
    _ok("identity_column_cached",
        "CREATE TABLE baseline_identity_cached (id bigint GENERATED ALWAYS AS IDENTITY "
        "(CACHE 65536) PRIMARY KEY, value text)", "rec:supported.json#identity_column_cached"),
    _ok("identity_bigint_by_default",
        "CREATE TABLE baseline_identity_big (id bigint GENERATED BY DEFAULT AS IDENTITY "
        "(CACHE 1) PRIMARY KEY)", "rec:supported.json#identity_bigint_by_default"),
    _ok("q_row_constructor", "SELECT ROW(1, 'a')", "rec:queries.json#q_row_constructor"),
    _ok("q_whole_row_in_subquery",
        "SELECT (SELECT p FROM baseline_parent p WHERE p.id = c.id) AS whole "
        "FROM baseline_parent c LIMIT 1", "rec:queries.json#q_whole_row_in_subquery", Q),
    _ok("q_group_by_distinct", "SELECT name, count(*) FROM baseline_parent GROUP BY DISTINCT name",
        "rec:queries.json#q_group_by_distinct", Q),
    _ok("q_window_rank",
        "SELECT name, RANK() OVER (PARTITION BY name ORDER BY name) FROM baseline_parent",
        "rec:queries.json#q_window_rank", Q),
    _ok("q_full_join", "SELECT p.name FROM baseline_parent p FULL JOIN baseline_child c "
        "ON c.parent_id = p.id ORDER BY 1", "rec:queries.json#q_full_join", Q),
    _ok("q_intersect", "SELECT name FROM baseline_parent INTERSECT SELECT name FROM "
        "baseline_parent ORDER BY 1", "rec:queries.json#q_intersect", Q),
    _ok("q_subquery_exists", "SELECT p.name FROM baseline_parent p WHERE EXISTS "
        "(SELECT 1 FROM baseline_child c WHERE c.parent_id = p.id)",
        "rec:queries.json#q_subquery_exists", Q),
    _ok("q_unnest", "SELECT unnest(string_to_array('a,b,c', ',')) ORDER BY 1",
        "rec:queries.json#q_unnest"),
    _ok("q_upsert", "INSERT INTO baseline_idx (id, value) VALUES "
        "('00000000-0000-0000-0000-0000000000a1', 'v2') ON CONFLICT (id) DO UPDATE "
        "SET value = EXCLUDED.value", "rec:queries.json#q_upsert", [IDX, IDX_ROW]),
    _ok("q_insert_select", "INSERT INTO baseline_bulk SELECT generate_series(1, 3)",
        "rec:queries.json#q_insert_select", [BULK]),
    _ok("q_delete_using", "DELETE FROM baseline_bulk USING baseline_parent WHERE "
        "baseline_bulk.id = 1", "rec:queries.json#q_delete_using",
        [*Q, BULK, "INSERT INTO baseline_bulk VALUES (1)"]),
    _ok("q_explain", "EXPLAIN SELECT 1", "rec:queries.json#q_explain"),
    _ok("q_analyze", "ANALYZE baseline_parent", "rec:queries.json#q_analyze", [PARENT]),
    _ok("q_set_constraints", ("BEGIN", "SET CONSTRAINTS ALL DEFERRED", "COMMIT"),
        "rec:queries.json#q_set_constraints"),
    _ok("q_grouping_sets", "SELECT count(*) FROM baseline_parent GROUP BY GROUPING SETS "
        "((name), ()) ORDER BY 1", "rec:queries.json#q_grouping_sets", Q),
    _ok("q_lateral", "SELECT p.name FROM baseline_parent p CROSS JOIN LATERAL (SELECT count(*) "
        "FROM baseline_child c WHERE c.parent_id = p.id) AS x ORDER BY 1",
        "rec:queries.json#q_lateral", Q),
    _ok("q_lateral_inner_outer_ref",
        "SELECT p.id, x.pid FROM baseline_lat_parent AS p INNER JOIN LATERAL (SELECT p.id AS pid "
        "FROM baseline_lat_child AS c WHERE p.id = c.parent_id) AS x ON TRUE",
        "rec:queries.json#q_lateral_inner_outer_ref", LAT),
    _ok("q_lateral_cross_outer_ref",
        f"{LAT_SELECT}CROSS JOIN LATERAL (SELECT p.id AS pid FROM baseline_lat_child AS c "
        "WHERE p.id = c.parent_id) AS x", "rec:queries.json#q_lateral_cross_outer_ref", LAT),
    _ok("occ_for_update", OCC_ROW + "UPDATE", "rec:occ.json#occ_for_update", [PARENT, SEED]),
    _ok("occ_for_key_share", OCC_ROW + "KEY SHARE", "rec:occ.json#occ_for_key_share",
        [PARENT, SEED]),
    _ok("q_with_recursive", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t "
        "WHERE n < 3) SELECT n FROM t ORDER BY 1", "rec:queries.json#q_with_recursive"),
    _ok("q_aggregate_filter",
        "SELECT count(*) FILTER (WHERE name = 'seed') FROM baseline_parent",
        "rec:queries.json#q_aggregate_filter", Q),
    _ok("q_distinct_on", "SELECT DISTINCT ON (name) name FROM baseline_parent ORDER BY name",
        "rec:queries.json#q_distinct_on", Q),
    _ok("multi_two_selects", "SELECT 1 AS a; SELECT 2 AS b",
        "rec:multi_statement.json#multi_two_selects"),
    _ok("multi_async_index_in_txn",
        "BEGIN; CREATE INDEX ASYNC baseline_multi_idx ON baseline_multi (a); COMMIT",
        "rec:multi_statement.json#multi_async_index_in_txn", [MULTI], client=True),
    _ok("multi_dml_in_txn", "BEGIN; INSERT INTO baseline_bulk (id) VALUES (1); COMMIT",
        "rec:multi_statement.json#multi_dml_in_txn", [BULK]),
    _ok("for_update", "SELECT * FROM baseline_parent FOR UPDATE",
        "doc: FOR UPDATE joins conflict detection", [PARENT]),
    _ok("for_key_share", "SELECT * FROM baseline_parent FOR KEY SHARE", "rules:unsupported_locking",
        [PARENT]),
    _ok("grant", "GRANT SELECT ON baseline_parent TO PUBLIC", "doc: GRANT/REVOKE", [PARENT]),
    _ok("revoke", "REVOKE SELECT ON baseline_parent FROM PUBLIC", "doc: GRANT/REVOKE", [PARENT]),
    _ok("writable_cte", "WITH d AS (DELETE FROM baseline_bulk RETURNING id) SELECT count(*) FROM d",
        "plain DML", [BULK]),
    _ok("create_role", ("CREATE ROLE baseline_strict_role", "DROP ROLE baseline_strict_role"),
        "doc: CREATE ROLE", ["DROP ROLE IF EXISTS baseline_strict_role"]),
]
