"""DSQL strict mode: a local PostgreSQL that refuses what Amazon Aurora DSQL refuses.

A PostgreSQL server module (``dsql_strict.c``) checks every statement, from any client
(SQLAlchemy, raw psycopg, psql), and refuses what DSQL refuses with DSQL's SQLSTATE and
message text, as recorded on a real cluster. A refusal is an ordinary error, so it has
DSQL's effect on the transaction: inside BEGIN the transaction is aborted (the next
statement gets 25P02); in autocommit nothing is left aborted. It enforces, among others:

- at most 3,000 rows modified per transaction (54000 ``transaction row limit exceeded``),
  failing the statement that crosses it;
- one DDL statement per transaction, and no DDL beside DML (0A000);
- no SAVEPOINT / RELEASE / ROLLBACK TO, no SET TRANSACTION, no isolation level but
  REPEATABLE READ; no TRUNCATE, VACUUM, LISTEN/NOTIFY, temporary or unlogged tables,
  triggers, serial, extensions, user-defined types, materialized views, CREATE TABLE AS,
  non-SQL functions, arrays or unsupported column types, ALTER COLUMN ... TYPE,
  sequences or identity columns without DSQL's CACHE, FOR SHARE, synchronous
  ``CREATE INDEX`` (``unsupported mode. please use CREATE INDEX ASYNC.``), ...

Conflicts are decided at COMMIT, as on DSQL: no statement waits for a row another
transaction holds or changed after its snapshot; it is answered from its snapshot, and the
transaction's COMMIT fails with 40001 ``change conflicts with another transaction, please
retry: (OC000)``. Every transaction runs at REPEATABLE READ (DSQL's snapshot isolation).

It costs nearly nothing per statement: it works in server hooks (ProcessUtility,
post-parse-analysis, ExecutorStart/End, a table access method that never waits), not in
triggers.

``CREATE INDEX ASYNC`` cannot be parsed by PostgreSQL, and no hook runs before its parser:
the local DSQL endpoint (:mod:`bank.kit.endpoint`, for every client) and, on direct
connections, the psycopg cursors of :mod:`bank.kit.strict.client` rewrite it into a call
of the ``sys`` schema (``sys.sql``), which emulates DSQL's ``sys.jobs`` and ``CALL
sys.wait_for_job(id)``, with fault injection for tests (``SET dsql_strict.next_index_job =
'fail' | 'invalid'``).

Public API:

- :mod:`bank.kit.strict.build`: ``build_extension(pg_config, out_dir) -> Path``,
  ``server_settings(so_path) -> dict`` (postgresql.conf), ``session_options(so_path)``
  (libpq options for one session), ``install_sys(conn)``, ``StrictModeUnavailable``.
- :mod:`bank.kit.strict.client`: ``StrictCursor``, ``StrictClientCursor``,
  ``rewrite(sql)``.

Settings: ``dsql_strict.enabled`` (on; only a superuser may turn it off, e.g. for a setup
script), ``dsql_strict.row_limit`` (3000), ``dsql_strict.next_index_job`` ('').

Enabling it:

- a server you start (the embedded one): add ``server_settings(build_extension(
  pg_config, out_dir))`` to postgresql.conf (``shared_preload_libraries = '<abs .so>'``),
  restart, then ``install_sys`` in the database;
- any other local PostgreSQL 15-18 (a distribution's package): install its server
  headers (Debian/Ubuntu: ``apt-get install postgresql-server-dev-15``), build with its
  ``pg_config``, make sure the server's OS user can read the .so (``build_extension``
  makes it world-readable and its folders traversable), then either connect as a
  superuser with ``options='-c session_preload_libraries=<abs .so>'``
  (``session_options``), or once ``ALTER DATABASE <db> SET session_preload_libraries =
  '<abs .so>'`` (every later session of that database, any role), or add it to
  ``shared_preload_libraries`` and restart; then ``install_sys``.
"""
