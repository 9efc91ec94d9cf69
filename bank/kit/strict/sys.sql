-- sys.sql: Aurora DSQL's `sys` schema, emulated for a local PostgreSQL in strict mode.
--
-- Installed by a superuser into one database (bank.kit.strict.build.install_sys);
-- idempotent: run it again to upgrade. It is local infrastructure, not application
-- code, so it may use PL/pgSQL; it turns strict mode off for its own transaction.
--
-- What it provides (the shapes are DSQL's, from recordings of a real cluster):
--   sys.jobs                  one row per job: job_id, status, details, job_type,
--                             class_id, object_id, object_name, start_time, update_time.
--                             status: submitted | processing | completed | failed | cancelled.
--   CALL sys.wait_for_job(id) a PROCEDURE (SELECT sys.wait_for_job(...) is 42809 "... is a
--                             procedure", as on DSQL); it answers one row, one boolean
--                             column `wait_for_job`: true once the job completed, false if
--                             it failed. An id that is not 26 base32 letters is 22P02
--                             "Unable to convert text to UUID" (DSQL's text).
--   sys.create_index_async(statement)   what the client rewrites CREATE INDEX ASYNC to
--                             (bank.kit.strict.client): builds the index now (the
--                             build counts as the transaction's one DDL), records an
--                             INDEX_BUILD job and returns one row (job_id). A job id is a
--                             random UUID in lowercase RFC 4648 base32 without padding, 26
--                             characters, like DSQL's. IF NOT EXISTS that finds the index
--                             returns one row whose job_id is NULL.
--   sys.alter_table_async(statement)    the same for ALTER TABLE ASYNC ... VALIDATE
--                             CONSTRAINT (job_type VALIDATE_CONSTRAINT).
--   Fault injection, for tests: SET dsql_strict.next_index_job = 'fail' | 'invalid'.
--     'fail':    the next index job is recorded failed, its index is left invalid
--                (pg_index.indisvalid = false, so the planner never uses it) and
--                sys.wait_for_job answers false.
--     'invalid': the index is left invalid and the job stays 'processing' (a build still
--                running); sys.wait_for_job then finishes it (valid, completed, true).
--   The setting is consumed by the job it affects.

SET LOCAL dsql_strict.enabled = off;

CREATE SCHEMA IF NOT EXISTS sys;
GRANT USAGE ON SCHEMA sys TO PUBLIC;
REVOKE CREATE ON SCHEMA sys FROM PUBLIC;

CREATE TABLE IF NOT EXISTS sys.jobs (
    job_id      text PRIMARY KEY,
    status      text NOT NULL
                CHECK (status IN ('submitted', 'processing', 'completed', 'failed', 'cancelled')),
    details     text,
    job_type    text NOT NULL,
    class_id    oid,
    object_id   oid,
    object_name text,
    start_time  timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz
);
REVOKE ALL ON sys.jobs FROM PUBLIC;
GRANT SELECT ON sys.jobs TO PUBLIC;

-- A new job id: a random UUID in lowercase base32 (RFC 4648, no padding).
CREATE OR REPLACE FUNCTION sys._new_job_id() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog AS $$
    SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz234567',
                             substring(b FROM i * 5 + 1 FOR 5)::int + 1, 1), '' ORDER BY i)
    FROM (SELECT ('x' || replace(gen_random_uuid()::text, '-', ''))::bit(128) || B'00' AS b) AS u,
         generate_series(0, 25) AS i
$$;

-- sys.current_session_id(): DSQL's name for this connection (its connectors and ORM
-- adapters read it as text). DSQL's format is not documented or recorded: here 26 base32
-- letters like a job id, the same for the whole session, different for every session.
CREATE OR REPLACE FUNCTION sys.current_session_id() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT string_agg(substr('abcdefghijklmnopqrstuvwxyz234567',
                             substring(b FROM i * 5 + 1 FOR 5)::int + 1, 1), '' ORDER BY i)
    FROM (SELECT ('x' || md5(a.pid::text || ' ' || a.backend_start::text))::bit(128) || B'00' AS b
            FROM pg_stat_get_activity(pg_backend_pid()) AS a) AS u,
         generate_series(0, 25) AS i
$$;

-- DSQL decodes a job id into a UUID: 26 base32 letters whose last two bits are zero.
CREATE OR REPLACE FUNCTION sys._check_job_id(job_id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $$
BEGIN
    IF job_id IS NULL OR job_id !~ '^[a-z2-7]{25}[aeimquy4]$' THEN
        RAISE EXCEPTION 'Unable to convert text to UUID' USING ERRCODE = '22P02';
    END IF;
END
$$;

-- Writes to sys.jobs and pg_index: as the installing superuser, with strict mode off so
-- that the emulation's own rows are neither DML nor counted against the row limit.
CREATE OR REPLACE FUNCTION sys._record_job(job_id text, status text, details text,
                                           job_type text, class_id oid, object_id oid,
                                           object_name text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET dsql_strict.enabled = off SET search_path = pg_catalog AS $$
    INSERT INTO sys.jobs (job_id, status, details, job_type, class_id, object_id, object_name,
                          start_time, update_time)
    VALUES (job_id, status, details, job_type, class_id, object_id, object_name,
            now(), CASE WHEN status IN ('completed', 'failed') THEN now() END)
$$;
REVOKE ALL ON FUNCTION sys._record_job(text, text, text, text, oid, oid, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION sys._set_index_valid(index_oid oid, valid boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET dsql_strict.enabled = off SET search_path = pg_catalog AS $$
    UPDATE pg_catalog.pg_index SET indisvalid = valid WHERE indexrelid = index_oid
$$;
REVOKE ALL ON FUNCTION sys._set_index_valid(oid, boolean) FROM PUBLIC;

-- The fault for this job, consumed (the reset is transactional, like the job).
CREATE OR REPLACE FUNCTION sys._take_fault() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    fault text := coalesce(current_setting('dsql_strict.next_index_job', true), '');
BEGIN
    IF fault <> '' THEN
        PERFORM set_config('dsql_strict.next_index_job', '', false);
    END IF;
    RETURN fault;
END
$$;

-- CREATE [UNIQUE] INDEX ASYNC, rewritten by the client into a call of this function with
-- the same statement minus ASYNC. The statement runs as the caller (its own privileges);
-- dsql_strict.index_build lets strict mode pass this one CREATE INDEX, still counted as
-- the transaction's DDL. The build is synchronous: a unique violation is raised here, not
-- reported later by the job as DSQL would.
CREATE OR REPLACE FUNCTION sys.create_index_async(statement text)
RETURNS TABLE (job_id text)
LANGUAGE plpgsql SET dsql_strict.index_build = on AS $$
DECLARE
    fault text := sys._take_fault();
    my_xid xid;
    idx   oid;
    iname text;
    jid   text;
BEGIN
    IF statement !~* '^\s*CREATE\s+(UNIQUE\s+)?INDEX\s' THEN
        RAISE EXCEPTION 'sys.create_index_async runs CREATE INDEX only' USING ERRCODE = '42601';
    END IF;
    my_xid := (pg_catalog.pg_current_xact_id()::text::numeric % 4294967296)::text::xid;
    EXECUTE statement;
    -- The index this transaction has just created (none if IF NOT EXISTS found one).
    SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
      INTO idx, iname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('i', 'I') AND c.xmin = my_xid
     ORDER BY c.oid DESC LIMIT 1;
    IF idx IS NULL THEN
        job_id := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    jid := sys._new_job_id();
    IF fault = 'fail' THEN
        PERFORM sys._set_index_valid(idx, false);
        PERFORM sys._record_job(jid, 'failed', 'index build failed (injected by dsql_strict)',
                                'INDEX_BUILD', 'pg_class'::regclass, idx, iname);
    ELSIF fault = 'invalid' THEN
        PERFORM sys._set_index_valid(idx, false);
        PERFORM sys._record_job(jid, 'processing', NULL, 'INDEX_BUILD', 'pg_class'::regclass,
                                idx, iname);
    ELSE
        PERFORM sys._record_job(jid, 'completed', NULL, 'INDEX_BUILD', 'pg_class'::regclass,
                                idx, iname);
    END IF;
    job_id := jid;
    RETURN NEXT;
END
$$;

-- ALTER TABLE ASYNC t VALIDATE CONSTRAINT c, rewritten by the client likewise.
CREATE OR REPLACE FUNCTION sys.alter_table_async(statement text)
RETURNS TABLE (job_id text)
LANGUAGE plpgsql SET dsql_strict.index_build = on AS $$
DECLARE
    jid text := sys._new_job_id();
BEGIN
    IF statement !~* '^\s*ALTER\s+TABLE\s.*\sVALIDATE\s+CONSTRAINT\s' THEN
        RAISE EXCEPTION 'sys.alter_table_async runs ALTER TABLE ... VALIDATE CONSTRAINT only'
            USING ERRCODE = '42601';
    END IF;
    EXECUTE statement;
    PERFORM sys._record_job(jid, 'completed', NULL, 'VALIDATE_CONSTRAINT',
                            'pg_constraint'::regclass, NULL, NULL);
    job_id := jid;
    RETURN NEXT;
END
$$;

-- CALL sys.wait_for_job('<job_id>'): one row, one boolean column named wait_for_job.
-- A job still 'submitted' or 'processing' is finished here (its index becomes valid).
CREATE OR REPLACE PROCEDURE sys.wait_for_job(job_id text, INOUT wait_for_job boolean DEFAULT NULL)
LANGUAGE plpgsql SECURITY DEFINER SET dsql_strict.enabled = off SET search_path = pg_catalog
AS $$
DECLARE
    wanted ALIAS FOR $1;
    job    sys.jobs%ROWTYPE;
BEGIN
    PERFORM sys._check_job_id(wanted);
    SELECT * INTO job FROM sys.jobs j WHERE j.job_id = wanted FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', wanted USING ERRCODE = '42704';
    END IF;
    IF job.status IN ('submitted', 'processing') THEN
        IF job.job_type = 'INDEX_BUILD' AND job.object_id IS NOT NULL THEN
            PERFORM sys._set_index_valid(job.object_id, true);
        END IF;
        UPDATE sys.jobs j SET status = 'completed', update_time = now() WHERE j.job_id = wanted;
        job.status := 'completed';
    END IF;
    wait_for_job := job.status = 'completed';
END
$$;

-- AWS IAM GRANT <role> TO '<iam arn>' / AWS IAM REVOKE <role> FROM '<iam arn>': DSQL's
-- mapping of an IAM identity to a database role, which PostgreSQL cannot parse. The client
-- rewrites them into these calls (bank.kit.strict.client); sys.iam_pg_role_mappings
-- lists the mappings, with the columns the DSQL guide queries (arn, pg_role_name). Locally
-- the mapping authorizes nothing: there is no IAM to check a connection against.
CREATE TABLE IF NOT EXISTS sys.iam_pg_role_mappings (
    arn          text NOT NULL,
    pg_role_oid  oid  NOT NULL,
    pg_role_name name NOT NULL,
    PRIMARY KEY (arn, pg_role_oid)
);
GRANT SELECT ON sys.iam_pg_role_mappings TO PUBLIC;

CREATE OR REPLACE FUNCTION sys.aws_iam_grant(role_name name, arn text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET dsql_strict.enabled = off SET search_path = pg_catalog
AS $$
DECLARE
    role_oid oid;
BEGIN
    SELECT oid INTO role_oid FROM pg_roles WHERE rolname = role_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = '42704';
    END IF;
    INSERT INTO sys.iam_pg_role_mappings VALUES (arn, role_oid, role_name)
        ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION sys.aws_iam_revoke(role_name name, arn text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET dsql_strict.enabled = off SET search_path = pg_catalog
AS $$ DELETE FROM sys.iam_pg_role_mappings m WHERE m.pg_role_name = role_name AND m.arn = arn $$;
