/*
 * dsql_strict.c -- "DSQL strict mode": make a local PostgreSQL refuse what
 * Amazon Aurora DSQL refuses, with DSQL's SQLSTATE and message text.
 *
 * Every refusal is an ordinary ereport(ERROR) raised while the statement
 * runs, so PostgreSQL itself gives it DSQL's transaction effect: inside an
 * explicit transaction block the block is aborted (the next statement gets
 * 25P02); in autocommit only the statement's own implicit transaction is
 * rolled back and nothing is left aborted.
 *
 * Where each rule's SQLSTATE and text come from (recordings of a real
 * cluster, or the DSQL user guide) is listed in tests/integration/strict/cases.py.
 *
 * Hooks (all chained to any previously installed hook):
 *   ProcessUtility_hook      statement rules for utility statements, and the
 *                            one-DDL-per-transaction / no DDL beside DML rule;
 *   post_parse_analyze_hook  rules visible in an analysed query (locking
 *                            strength, TABLESAMPLE, MERGE, unsupported types
 *                            in expressions, DSQL's LEFT JOIN LATERAL defect);
 *                            runs once per parse, not per
 *                            execution of a prepared statement;
 *   ExecutorStart_hook       marks the transaction as having run DML;
 *   ExecutorEnd_hook         adds es_processed of INSERT/UPDATE/DELETE/MERGE
 *                            (and the rows of writable CTEs) to the
 *                            transaction's row count (54000 past it);
 *   RegisterXactCallback     fails the COMMIT of a doomed transaction (40001
 *                            OC000, below) and resets the per-transaction state.
 *
 * Optimistic concurrency, as on DSQL ("conflicts decided at COMMIT"). DSQL lets
 * every statement run on its snapshot without waiting for anyone, and fails the
 * loser's COMMIT. Here the tables a statement writes or locks (its result
 * relations and row marks) use, while its executor runs, a copy of heap's table
 * access method whose tuple_update, tuple_delete and tuple_lock never wait: a
 * row another transaction holds (or changed after this snapshot) is not
 * written, the statement goes on as if it had been (its row count, its
 * RETURNING rows computed from this snapshot, as DSQL reports them), and the
 * transaction is doomed: from then on nothing it does takes a row lock, and its
 * COMMIT fails with 40001. The copy is put on the relation's relcache entry at
 * ExecutorStart and taken off at ExecutorEnd (and at (sub)transaction abort), so
 * nothing else (DDL, index builds) ever sees it. Every strict transaction runs
 * at REPEATABLE READ (DSQL's snapshot isolation), whatever
 * default_transaction_isolation says.
 *
 * The per-transaction state is a few plain statics: no allocation happens per
 * statement, except the message strings of a refusal (in the current memory
 * context, released with the aborted statement) and, once per backend, the
 * array of relations the conflict emulation has changed.
 *
 * GUCs:
 *   dsql_strict.enabled        bool, default on, superuser-only (SUSET).
 *   dsql_strict.row_limit      int, default 3000, superuser-only.
 *   dsql_strict.index_build    bool, default off: set by sys.create_index_async
 *                              (bank/kit/strict/sys.sql) around the one
 *                              CREATE INDEX / VALIDATE CONSTRAINT it runs.
 *   dsql_strict.next_index_job string: '' | 'fail' | 'invalid', a fault for
 *                              the next emulated index job (read by sys.sql).
 *
 * Compiles against PostgreSQL 15, 16, 17 and 18.
 */
#include "postgres.h"

#include <limits.h>

#include "access/heapam.h"
#include "access/parallel.h"
#include "access/relation.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "storage/itemptr.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

#if PG_VERSION_NUM < 150000
#error "dsql_strict needs PostgreSQL 15 or later"
#endif

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ---- settings -------------------------------------------------------------------- */
static bool strict_enabled = true;
static int	strict_row_limit = 3000;
static bool strict_index_build = false;
static char *strict_next_index_job = NULL;

/* ---- per-transaction state (reset by xact_callback) ------------------------------ */
static int	xact_ddl_count = 0;
static bool xact_dml_seen = false;
static uint64 xact_rows = 0;
static bool xact_doomed = false;	/* lost a conflict: its COMMIT fails (40001) */

/* ---- previous hooks ---------------------------------------------------------------- */
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

/* DSQL's texts, verbatim (see tests/integration/strict/cases.py for the evidence of each). */
#define MSG_MULTI_DDL "multiple ddl statements not supported in a transaction"
#define MSG_DDL_DML "ddl and dml are not supported in the same transaction"
#define MSG_ROW_LIMIT "transaction row limit exceeded"
#define MSG_SYNC_INDEX "unsupported mode. please use CREATE INDEX ASYNC."
#define MSG_CACHE_TAIL \
	"is not supported without an explicit cache size. please define CACHE greater than or equal to 65536 or equal to 1"
#define MSG_CACHE_VALUE "CACHE (" INT64_FORMAT ") must be greater than or equal to 65536 or equal to 1"
#define MSG_SEQ_TYPE "sequence type must be bigint"
#define MSG_KEY_COLUMNS "more than 8 column keys in an index are not supported"
#define MAX_KEY_COLUMNS 8
#define MSG_CONFLICT "change conflicts with another transaction, please retry: (OC000)"

static void
refuse(const char *msg)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg_internal("%s", msg)));
}

static void
refuse_statement(const char *node_name)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg_internal("unsupported statement: %s", node_name)));
}

/* ---- transaction rules --------------------------------------------------------------- */

static void
note_ddl(void)
{
	if (xact_ddl_count > 0)
		refuse(MSG_MULTI_DDL);
	if (xact_dml_seen)
		refuse(MSG_DDL_DML);
	xact_ddl_count++;
}

static void
note_dml(void)
{
	if (xact_ddl_count > 0)
		refuse(MSG_DDL_DML);
	xact_dml_seen = true;
}

static void
add_rows(uint64 n)
{
	xact_rows += n;
	if (strict_row_limit > 0 && xact_rows > (uint64) strict_row_limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg_internal(MSG_ROW_LIMIT)));
}

static void occ_restore_all(void);

static void
xact_callback(XactEvent event, void *arg)
{
	/*
	 * A transaction that lost a conflict never commits, whatever strict mode says
	 * now: its COMMIT fails as DSQL's does (the error aborts it; ABORT follows).
	 */
	if (xact_doomed && (event == XACT_EVENT_PRE_COMMIT ||
						event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
						event == XACT_EVENT_PRE_PREPARE))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE), errmsg_internal(MSG_CONFLICT)));
	/* Every event is at (or past) the end of the transaction's statements. */
	xact_ddl_count = 0;
	xact_dml_seen = false;
	xact_rows = 0;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		xact_doomed = false;
		occ_restore_all();
	}
}

/* ---- helpers ------------------------------------------------------------------------- */

static const char *
const_string(Node *arg)
{
	if (arg != NULL && IsA(arg, A_Const) && !((A_Const *) arg)->isnull &&
		IsA(&((A_Const *) arg)->val, String))
		return strVal(&((A_Const *) arg)->val);
	if (arg != NULL && IsA(arg, String))
		return strVal(arg);
	return NULL;
}

/* The isolation level named in a list of transaction DefElems, or NULL. */
static const char *
isolation_in(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "transaction_isolation") == 0)
			return const_string(d->arg);
	}
	return NULL;
}

/* DSQL runs every transaction at REPEATABLE READ; any other level is refused. */
static void
check_isolation(const char *level)
{
	char	   *upper;
	char	   *p;

	if (level == NULL || pg_strcasecmp(level, "repeatable read") == 0)
		return;
	upper = pstrdup(level);
	for (p = upper; *p; p++)
		*p = pg_toupper((unsigned char) *p);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg_internal("Unsupported isolation level: %s", upper)));
}

/*
 * DSQL asks for an explicit CACHE of 1 or at least 65536: without one the statement is
 * refused (0A000, naming "what"); a value outside that is a data error quoting it.
 */
static void
check_cache(List *options, const char *what, bool required)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "cache") == 0 && d->arg != NULL)
		{
			int64		cache = defGetInt64(d);

			if (cache == 1 || cache >= 65536)
				return;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_internal(MSG_CACHE_VALUE, cache)));
		}
	}
	if (required)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg_internal("%s %s", what, MSG_CACHE_TAIL)));
}

/* CREATE / ALTER SEQUENCE ... AS type: bigint only. */
static void
check_sequence_type(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "as") == 0 && d->arg != NULL)
		{
			Oid			typid;
			int32		typmod;

			typenameTypeIdAndMod(NULL, defGetTypeName(d), &typid, &typmod);
			if (getBaseType(typid) != INT8OID)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg_internal(MSG_SEQ_TYPE)));
		}
	}
}

/* A primary key or an index has at most 8 key columns (DSQL's quota). */
static void
check_key_columns(int count)
{
	if (count > MAX_KEY_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS), errmsg_internal(MSG_KEY_COLUMNS)));
}

static bool
is_serial_name(TypeName *tn)
{
	const char *name;

	if (tn == NULL || list_length(tn->names) != 1 || tn->pct_type || tn->arrayBounds != NIL)
		return false;
	name = strVal(linitial(tn->names));
	return strcmp(name, "serial") == 0 || strcmp(name, "serial4") == 0 ||
		strcmp(name, "bigserial") == 0 || strcmp(name, "serial8") == 0 ||
		strcmp(name, "smallserial") == 0 || strcmp(name, "serial2") == 0;
}

/* Column types DSQL stores: the user guide's list of supported types. */
static bool
type_supported(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
		case BPCHAROID:
		case VARCHAROID:
		case TEXTOID:
		case CHAROID:
		case NAMEOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case BOOLOID:
		case BYTEAOID:
		case UUIDOID:
		case JSONOID:
		case JSONBOID:
			return true;
		default:
			return false;
	}
}

/* Geometric types: refused even as values inside a query. */
static bool
type_geometric(Oid typid)
{
	return typid == POINTOID || typid == LINEOID || typid == LSEGOID || typid == BOXOID ||
		typid == PATHOID || typid == POLYGONOID || typid == CIRCLEOID;
}

static void
refuse_type(Oid typid)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg_internal("datatype %s not supported", format_type_be(typid))));
}

/*
 * A column's declared type. serial is not a type on DSQL (42704, as for any
 * unknown type name); anything else must resolve to a supported type (a domain
 * is judged by its base type; arrays are never stored).
 */
static void
check_column_type(TypeName *tn)
{
	Oid			typid;
	int32		typmod;

	if (tn == NULL)
		return;
	if (is_serial_name(tn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg_internal("type \"%s\" does not exist", strVal(linitial(tn->names)))));
	/* Raises PostgreSQL's own 42704 for an unknown type, as DSQL does. */
	typenameTypeIdAndMod(NULL, tn, &typid, &typmod);
	if (OidIsValid(get_element_type(typid)))
		refuse_type(typid);
	if (!type_supported(getBaseType(typid)))
		refuse_type(getBaseType(typid));
}

static void
check_identity(ColumnDef *col)
{
	ListCell   *lc;

	foreach(lc, col->constraints)
	{
		Constraint *c = lfirst_node(Constraint, lc);
		Oid			typid;
		int32		typmod;

		if (c->contype != CONSTR_IDENTITY)
			continue;
		/* Whether DSQL names a bad CACHE or the type first is not recorded. */
		check_cache(c->options, "identity column", true);
		typenameTypeIdAndMod(NULL, col->typeName, &typid, &typmod);
		if (typid != INT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg_internal("datatype %s not supported, identity column type must be bigint",
									 format_type_be(typid))));
	}
}

static void
check_create_table(CreateStmt *stmt)
{
	ListCell   *lc;

	if (stmt->relation->relpersistence == RELPERSISTENCE_TEMP)
		refuse("TEMPORARY or TEMP table not supported for CREATE TABLE");
	if (stmt->relation->relpersistence == RELPERSISTENCE_UNLOGGED)
		refuse("UNLOGGED table not supported for CREATE TABLE");
	/* Documented as unsupported; DSQL's text was not recorded (guessed form). */
	if (stmt->inhRelations != NIL && stmt->partbound == NULL)
		refuse("INHERITS not supported for CREATE TABLE");
	if (stmt->partspec != NULL || stmt->partbound != NULL)
		refuse("PARTITION not supported for CREATE TABLE");
	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, Constraint) && (((Constraint *) elt)->contype == CONSTR_PRIMARY ||
									 ((Constraint *) elt)->contype == CONSTR_UNIQUE))
			check_key_columns(list_length(((Constraint *) elt)->keys));
		if (IsA(elt, ColumnDef))
		{
			ColumnDef  *col = (ColumnDef *) elt;

			if (is_serial_name(col->typeName))
				check_column_type(col->typeName);	/* 42704 before any identity rule */
			check_identity(col);
			check_column_type(col->typeName);
		}
	}
}

static bool
column_has_constraint(ColumnDef *col)
{
	return col->constraints != NIL || col->raw_default != NULL ||
		col->cooked_default != NULL || col->identity != 0 || col->generated != 0;
}

/* ALTER TABLE t DROP COLUMN c, where c is in t's primary key. */
static void
check_drop_pk_column(AlterTableStmt *stmt, const char *colname)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	Relation	rel;
	Bitmapset  *pk;
	AttrNumber	attnum;

	if (!OidIsValid(relid) || colname == NULL)
		return;					/* let PostgreSQL report it */
	attnum = get_attnum(relid, colname);
	if (attnum == InvalidAttrNumber)
		return;
	rel = relation_open(relid, AccessShareLock);
	pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	relation_close(rel, AccessShareLock);
	if (bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, pk))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg_internal("cannot drop primary key column %s", colname)));
}

static void
check_alter_table(AlterTableStmt *stmt)
{
	ListCell   *lc;

	if (stmt->objtype == OBJECT_TYPE)
		refuse("ALTER TYPE not supported");
	if (stmt->objtype != OBJECT_TABLE)
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		switch (cmd->subtype)
		{
			case AT_AddColumn:
				{
					ColumnDef  *col = castNode(ColumnDef, cmd->def);

					if (column_has_constraint(col))
						refuse("ALTER TABLE ADD COLUMN with constraint not supported");
					check_column_type(col->typeName);
					break;
				}
			case AT_AlterColumnType:
				refuse("unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement");
				break;
			case AT_AddConstraint:
				{
					Constraint *c = castNode(Constraint, cmd->def);

					switch (c->contype)
					{
						case CONSTR_PRIMARY:
						case CONSTR_UNIQUE:
							/* ... USING INDEX adopts an index: accepted. */
							if (c->indexname == NULL)
								refuse("unsupported ALTER TABLE ADD CONSTRAINT statement");
							break;
						case CONSTR_CHECK:
						case CONSTR_FOREIGN:
							/* DSQL validates these only by ALTER TABLE ASYNC. */
							if (!c->skip_validation)
								refuse("unsupported ALTER TABLE ADD CONSTRAINT statement");
							break;
						case CONSTR_EXCLUSION:
							refuse("unsupported ALTER TABLE ADD CONSTRAINT statement");
							break;
						default:
							break;
					}
					break;
				}
			case AT_ValidateConstraint:
				if (!strict_index_build)
					refuse("unsupported ALTER TABLE VALIDATE CONSTRAINT statement");
				break;
			case AT_DropColumn:
				check_drop_pk_column(stmt, cmd->name);
				break;
			default:
				break;
		}
	}
}

static void
check_transaction_stmt(TransactionStmt *stmt)
{
	switch (stmt->kind)
	{
		case TRANS_STMT_BEGIN:
		case TRANS_STMT_START:
			check_isolation(isolation_in(stmt->options));
			break;
		case TRANS_STMT_SAVEPOINT:
			refuse("unsupported transaction statement: SAVEPOINT");
			break;
		case TRANS_STMT_RELEASE:
			refuse("unsupported transaction statement: RELEASE");
			break;
		case TRANS_STMT_ROLLBACK_TO:
			refuse("unsupported transaction statement: ROLLBACK TO");
			break;
		case TRANS_STMT_PREPARE:
			refuse("unsupported transaction statement: PREPARE TRANSACTION");
			break;
		case TRANS_STMT_COMMIT_PREPARED:
			refuse("unsupported transaction statement: COMMIT PREPARED");
			break;
		case TRANS_STMT_ROLLBACK_PREPARED:
			refuse("unsupported transaction statement: ROLLBACK PREPARED");
			break;
		default:
			break;
	}
}

/*
 * SET TRANSACTION / SET SESSION CHARACTERISTICS / SET [default_]transaction_
 * isolation: an unsupported level is named first (as recorded for SET
 * TRANSACTION ISOLATION LEVEL SERIALIZABLE), else the setting itself is refused,
 * named as the statement names it.
 */
static void
check_variable_set(VariableSetStmt *stmt)
{
	const char *name = stmt->name;

	if (name == NULL)
		return;
	if (strcmp(name, "TRANSACTION") == 0 || strcmp(name, "SESSION CHARACTERISTICS") == 0)
		check_isolation(isolation_in(stmt->args));
	else if (strcmp(name, "transaction_isolation") == 0 ||
			 strcmp(name, "default_transaction_isolation") == 0)
	{
		if (stmt->kind == VAR_SET_VALUE && stmt->args != NIL)
			check_isolation(const_string(linitial(stmt->args)));
	}
	else if (strcmp(name, "TRANSACTION SNAPSHOT") != 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg_internal("setting configuration parameter \"%s\" not supported", name)));
}

static void
check_create_function(CreateFunctionStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "language") == 0)
		{
			const char *lang = const_string(d->arg);

			if (lang != NULL && pg_strcasecmp(lang, "sql") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg_internal("CREATE FUNCTION with language %s not supported", lang)));
		}
	}
}

/* The statement rules; raise the refusal, or return if DSQL accepts it. */
static void
check_utility(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_TransactionStmt:
			check_transaction_stmt((TransactionStmt *) parsetree);
			break;
		case T_VariableSetStmt:
			check_variable_set((VariableSetStmt *) parsetree);
			break;
		case T_VariableShowStmt:
			{
				/* PostgreSQL 16 (DSQL's base) has no lc_collate / lc_ctype settings. */
				const char *name = ((VariableShowStmt *) parsetree)->name;

				if (pg_strcasecmp(name, "lc_collate") == 0 || pg_strcasecmp(name, "lc_ctype") == 0)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg_internal("unrecognized configuration parameter \"%s\"", name)));
				break;
			}
		case T_TruncateStmt:
			refuse_statement("Truncate");
			break;
		case T_CreateExtensionStmt:
			refuse_statement("CreateExtension");
			break;
		case T_CreateTrigStmt:
			refuse("CREATE TRIGGER not supported");
			break;
		case T_CreatedbStmt:
			refuse_statement("Createdb");
			break;
		case T_DropdbStmt:
			refuse_statement("Dropdb");
			break;
		case T_CreateStmt:
			check_create_table((CreateStmt *) parsetree);
			break;
		case T_CreateForeignTableStmt:
			refuse_statement("CreateForeignTable");
			break;
		case T_CreateTableAsStmt:	/* also SELECT INTO and materialized views */
			refuse_statement("CreateTableAs");
			break;
		case T_RefreshMatViewStmt:
			refuse_statement("RefreshMatView");
			break;
		case T_CreateEnumStmt:
			refuse("CREATE TYPE not supported");
			break;
		case T_CompositeTypeStmt:
			refuse_statement("CompositeType");
			break;
		case T_CreateRangeStmt:
			refuse_statement("CreateRange");
			break;
		case T_DefineStmt:
			if (((DefineStmt *) parsetree)->kind == OBJECT_TYPE)
				refuse("CREATE TYPE not supported");
			break;
		case T_AlterEnumStmt:
		case T_AlterTypeStmt:
			refuse("ALTER TYPE not supported");
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_TYPE)
				refuse("unsupported object in RENAME statement");
			break;
		case T_DropStmt:
			if (((DropStmt *) parsetree)->removeType == OBJECT_TYPE)
				refuse("unsupported object in DROP statement");
			break;
		case T_CreateSeqStmt:
			{
				/* The missing CACHE first (recorded), then the type, then CACHE's value. */
				List	   *options = ((CreateSeqStmt *) parsetree)->options;
				ListCell   *lc;
				bool		has_cache = false;

				foreach(lc, options)
					if (strcmp(lfirst_node(DefElem, lc)->defname, "cache") == 0)
						has_cache = true;
				if (!has_cache)
					check_cache(options, "CREATE SEQUENCE", true);
				check_sequence_type(options);
				check_cache(options, "CREATE SEQUENCE", false);
				break;
			}
		case T_AlterSeqStmt:
			check_sequence_type(((AlterSeqStmt *) parsetree)->options);
			check_cache(((AlterSeqStmt *) parsetree)->options, "ALTER SEQUENCE", false);
			break;
		case T_CreateTableSpaceStmt:
			refuse_statement("CreateTableSpace");
			break;
		case T_VacuumStmt:
			if (((VacuumStmt *) parsetree)->is_vacuumcmd)
				refuse("unsupported VACUUM statement");
			break;				/* ANALYZE is accepted */
		case T_ListenStmt:
			refuse_statement("Listen");
			break;
		case T_NotifyStmt:
			refuse_statement("Notify");
			break;
		case T_UnlistenStmt:
			refuse_statement("Unlisten");
			break;
		case T_AlterSystemStmt:
			refuse_statement("AlterSystem");
			break;
		case T_IndexStmt:
			if (!strict_index_build)
				refuse(MSG_SYNC_INDEX);
			check_key_columns(list_length(((IndexStmt *) parsetree)->indexParams));
			break;
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) parsetree);
			break;
		case T_CreateFunctionStmt:
			check_create_function((CreateFunctionStmt *) parsetree);
			break;
			/* PostgreSQL features with no DSQL counterpart, in DSQL's generic form. */
		case T_DoStmt:
			refuse_statement("Do");
			break;
		case T_RuleStmt:
			refuse_statement("Rule");
			break;
		case T_CreateEventTrigStmt:
			refuse_statement("CreateEventTrig");
			break;
		case T_CreatePLangStmt:
			refuse_statement("CreatePLang");
			break;
		case T_CreatePublicationStmt:
			refuse_statement("CreatePublication");
			break;
		case T_CreateSubscriptionStmt:
			refuse_statement("CreateSubscription");
			break;
		case T_CreateFdwStmt:
			refuse_statement("CreateFdw");
			break;
		case T_CreateForeignServerStmt:
			refuse_statement("CreateForeignServer");
			break;
		case T_ClusterStmt:
			refuse_statement("Cluster");
			break;
		case T_ReindexStmt:
			refuse_statement("Reindex");
			break;
		case T_CheckPointStmt:
			refuse_statement("CheckPoint");
			break;
		case T_LoadStmt:
			refuse_statement("Load");
			break;
		default:
			break;
	}
}

static void
strict_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		copy_from = false;

	/*
	 * SUBCOMMANDs are the pieces PostgreSQL splits one statement into (the
	 * primary key index of a CREATE TABLE, ...): the statement was judged whole.
	 */
	if (strict_enabled && context != PROCESS_UTILITY_SUBCOMMAND)
	{
		check_utility(parsetree);
		if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->is_from)
		{
			note_dml();
			copy_from = true;
		}
		else if (GetCommandLogLevel(parsetree) == LOGSTMT_DDL)
			note_ddl();
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
							dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);

	if (copy_from && qc != NULL)
		add_rows(qc->nprocessed);

	/*
	 * DSQL's snapshot isolation for every explicit transaction: a BEGIN without a level
	 * starts at default_transaction_isolation, which strict mode also overrides (see
	 * _PG_init); no snapshot has been taken yet, so the level can still change.
	 */
	if (strict_enabled && IsA(parsetree, TransactionStmt) &&
		(((TransactionStmt *) parsetree)->kind == TRANS_STMT_BEGIN ||
		 ((TransactionStmt *) parsetree)->kind == TRANS_STMT_START) &&
		IsTransactionBlock() && !FirstSnapshotSet && XactIsoLevel < XACT_REPEATABLE_READ)
		XactIsoLevel = XACT_REPEATABLE_READ;
}

/* ---- analysed queries ---------------------------------------------------------------- */

static bool strict_query_walker(Node *node, void *context);

/* The Vars of an expression that refer to the query one level up (not into sublinks). */
static bool
outer_vars_walker(Node *node, List **vars)
{
	if (node == NULL || IsA(node, Query))
		return false;
	if (IsA(node, Var) && ((Var *) node)->varlevelsup == 1)
		*vars = lappend(*vars, node);
	return expression_tree_walker(node, outer_vars_walker, vars);
}

/*
 * A DSQL defect, recorded (queries.json q_lateral_left_*): in a LEFT JOIN LATERAL to a
 * one-table subquery that PostgreSQL's planner pulls up, an output expression that
 * refers to the outer query is evaluated against the subquery's table, so the outer
 * column n is read as that table's column n. Where the two types differ DSQL fails with
 * 42804 "attribute n of type <table> has wrong type"; CROSS and INNER JOIN LATERAL run
 * the same subquery. (Where the types agree DSQL answers, and so does this.)
 */
static void
check_left_lateral(RangeTblEntry *rte)
{
	Query	   *sub = rte->subquery;
	RangeTblEntry *rel;
	ListCell   *lc;

	if (rte->rtekind != RTE_SUBQUERY || !rte->lateral || sub->hasAggs ||
		sub->groupClause != NIL || sub->groupingSets != NIL || sub->havingQual != NULL ||
		sub->hasWindowFuncs || sub->hasTargetSRFs || sub->distinctClause != NIL ||
		sub->limitCount != NULL || sub->limitOffset != NULL || sub->setOperations != NULL ||
		sub->cteList != NIL || sub->rowMarks != NIL ||
		list_length(sub->jointree->fromlist) != 1 ||
		!IsA(linitial(sub->jointree->fromlist), RangeTblRef))
		return;
	rel = rt_fetch(linitial_node(RangeTblRef, sub->jointree->fromlist)->rtindex, sub->rtable);
	if (rel->rtekind != RTE_RELATION)
		return;
	foreach(lc, sub->targetList)
	{
		List	   *vars = NIL;
		ListCell   *lv;

		(void) outer_vars_walker((Node *) lfirst_node(TargetEntry, lc)->expr, &vars);
		foreach(lv, vars)
		{
			Var		   *var = lfirst_node(Var, lv);
			Oid			atttype;

			if (var->varattno <= 0)
				continue;
			atttype = get_atttype(rel->relid, var->varattno);	/* 0: none, or dropped */
			if (OidIsValid(atttype) && atttype != var->vartype)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg_internal("attribute %d of type %s has wrong type", var->varattno,
										 format_type_be(get_rel_type_id(rel->relid))),
						 errdetail_internal("Table has type %s, but query expects %s.",
											format_type_be(atttype),
											format_type_be(var->vartype))));
		}
	}
}

static void
check_lateral_joins(Query *query, Node *node)
{
	ListCell   *lc;

	if (node == NULL)
		return;
	if (IsA(node, FromExpr))
	{
		foreach(lc, ((FromExpr *) node)->fromlist)
			check_lateral_joins(query, lfirst(lc));
	}
	else if (IsA(node, JoinExpr))
	{
		JoinExpr   *join = (JoinExpr *) node;

		check_lateral_joins(query, join->larg);
		check_lateral_joins(query, join->rarg);
		if (join->jointype == JOIN_LEFT && IsA(join->rarg, RangeTblRef))
			check_left_lateral(rt_fetch(((RangeTblRef *) join->rarg)->rtindex, query->rtable));
	}
}

static void
check_query(Query *query)
{
	ListCell   *lc;

	check_lateral_joins(query, (Node *) query->jointree);
	if (query->commandType == CMD_MERGE)
		refuse("unsupported statement type: MERGE");
	foreach(lc, query->rowMarks)
	{
		RowMarkClause *rc = lfirst_node(RowMarkClause, lc);

		if (rc->strength == LCS_FORSHARE || rc->strength == LCS_FORNOKEYUPDATE)
			refuse("locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported");
	}
}

static bool
strict_query_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		check_query((Query *) node);
		return query_tree_walker((Query *) node, strict_query_walker, context,
								 QTW_EXAMINE_RTES_BEFORE);
	}
	if (IsA(node, RangeTblEntry))
	{
		if (((RangeTblEntry *) node)->tablesample != NULL)
			refuse("TABLESAMPLE clause not supported");
		return false;
	}
	if (IsA(node, Const) || IsA(node, FuncExpr) || IsA(node, OpExpr) ||
		IsA(node, CoerceViaIO) || IsA(node, RelabelType))
	{
		Oid			typid = exprType(node);

		if (type_geometric(typid))
			refuse_type(typid);
		/* DSQL ships no text search configurations. */
		if (IsA(node, Const) && typid == REGCONFIGOID && !((Const *) node)->constisnull)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg_internal("text search configuration \"%s\" does not exist",
									 DatumGetCString(DirectFunctionCall1(regconfigout,
																		 ((Const *) node)->constvalue)))));
	}
	return expression_tree_walker(node, strict_query_walker, context);
}

static void
strict_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (strict_enabled && query->commandType != CMD_UTILITY)
		(void) strict_query_walker((Node *) query, NULL);
}

/* ---- optimistic concurrency: conflicts decided at COMMIT ----------------------------- */

/*
 * heap's table access method, and a copy of it whose tuple_update, tuple_delete and
 * tuple_lock never wait for another transaction. Everything else is heap's own
 * function, so a scan, an insert or an index fetch through the copy is heap's.
 */
static const TableAmRoutine *heap_routine = NULL;
static TableAmRoutine strict_heap;

#if PG_VERSION_NUM >= 160000
typedef TU_UpdateIndexes UpdateIndexes;
#define NO_INDEX_UPDATE TU_None
#else
typedef bool UpdateIndexes;
#define NO_INDEX_UPDATE false
#endif

/*
 * The relations whose relcache entry carries strict_heap, each with the executor that
 * put it there: a relation keeps the copy while any executor that wanted it is running.
 * A relcache rebuild (an invalidation) gives an entry heap's routine back; the relcache
 * callback puts the copy on again, which is why the entries are kept here.
 */
typedef struct OccPatch
{
	Relation	rel;
	EState	   *estate;
	SubTransactionId subid;
} OccPatch;

static OccPatch *occ_patches = NULL;
static int	occ_npatches = 0;
static int	occ_maxpatches = 0;

/* Conflicts are emulated in strict mode at DSQL's isolation, snapshot (REPEATABLE READ). */
static inline bool
occ_active(void)
{
	return strict_enabled && XactIsoLevel == XACT_REPEATABLE_READ;
}

static bool
occ_patched(Relation rel)
{
	int			i;

	for (i = 0; i < occ_npatches; i++)
		if (occ_patches[i].rel == rel)
			return true;
	return false;
}

static void
occ_patch(Relation rel, EState *estate)
{
	if (rel == NULL || (rel->rd_tableam != heap_routine && rel->rd_tableam != &strict_heap))
		return;					/* not a heap table (a view, a foreign table, ...) */
	if (occ_npatches == occ_maxpatches)
	{
		occ_maxpatches = occ_maxpatches == 0 ? 16 : occ_maxpatches * 2;
		occ_patches = occ_patches == NULL
			? MemoryContextAlloc(TopMemoryContext, occ_maxpatches * sizeof(OccPatch))
			: repalloc(occ_patches, occ_maxpatches * sizeof(OccPatch));
	}
	occ_patches[occ_npatches].rel = rel;
	occ_patches[occ_npatches].estate = estate;
	occ_patches[occ_npatches].subid = GetCurrentSubTransactionId();
	occ_npatches++;
	rel->rd_tableam = &strict_heap;
}

/* Drop entry i; heap's routine goes back on the relation no other entry holds. */
static void
occ_unpatch_at(int i)
{
	Relation	rel = occ_patches[i].rel;

	occ_patches[i] = occ_patches[--occ_npatches];
	if (!occ_patched(rel) && rel->rd_tableam == &strict_heap)
		rel->rd_tableam = heap_routine;
}

/* ExecutorStart: the statement's result relations and row-marked relations. */
static void
occ_patch_executor(QueryDesc *queryDesc)
{
	EState	   *estate = queryDesc->estate;
	PlannedStmt *stmt = queryDesc->plannedstmt;
	ListCell   *lc;

	if (estate == NULL || estate->es_relations == NULL || IsParallelWorker())
		return;
	foreach(lc, stmt->resultRelations)
	{
		Index		rti = lfirst_int(lc);

		if (rti > 0 && rti <= estate->es_range_table_size)
			occ_patch(estate->es_relations[rti - 1], estate);
	}
	foreach(lc, stmt->rowMarks)
	{
		PlanRowMark *rc = lfirst_node(PlanRowMark, lc);

		if (!rc->isParent && rc->rti > 0 && rc->rti <= estate->es_range_table_size)
			occ_patch(estate->es_relations[rc->rti - 1], estate);
	}
}

/* ExecutorEnd, before the executor closes its relations. */
static void
occ_unpatch_executor(EState *estate)
{
	int			i = 0;

	while (i < occ_npatches)
	{
		if (occ_patches[i].estate == estate)
			occ_unpatch_at(i);
		else
			i++;
	}
}

/* Transaction end: nothing runs any more. Before the relations are closed. */
static void
occ_restore_all(void)
{
	while (occ_npatches > 0)
		occ_unpatch_at(occ_npatches - 1);
}

/* A subtransaction aborts: its executors will never reach ExecutorEnd. */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
				 void *arg)
{
	int			i = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (i < occ_npatches)
	{
		if (occ_patches[i].subid >= mySubid)
			occ_unpatch_at(i);
		else
			i++;
	}
}

/* A relcache entry was rebuilt (heap's routine again): put the copy back on. */
static void
occ_relcache_callback(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < occ_npatches; i++)
	{
		Relation	rel = occ_patches[i].rel;

		if ((relid == InvalidOid || RelationGetRelid(rel) == relid) &&
			rel->rd_tableam == heap_routine)
			rel->rd_tableam = &strict_heap;
	}
}

static void
doom(void)
{
	xact_doomed = true;
}

/*
 * Lock a row without waiting (heap's own lock: compatible lockers, such as the KEY
 * SHARE of a foreign key check against an update that keeps the key, do not block).
 */
static TM_Result
lock_no_wait(Relation rel, ItemPointer tid, Snapshot snapshot, CommandId cid,
			 LockTupleMode mode, TM_FailureData *tmfd)
{
	TupleTableSlot *tmp = MakeSingleTupleTableSlot(RelationGetDescr(rel),
												   heap_routine->slot_callbacks(rel));
	TM_Result	result = heap_routine->tuple_lock(rel, tid, snapshot, tmp, cid, mode,
												  LockWaitSkip, 0, tmfd);

	ExecDropSingleTupleTableSlot(tmp);
	return result;
}

/* The row lock an update needs: exclusive if it changes a key column (heap's rule). */
static LockTupleMode
update_lock_mode(Relation rel, ItemPointer otid, TupleTableSlot *newslot)
{
	Bitmapset  *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_KEY);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *old;
	LockTupleMode mode = LockTupleNoKeyExclusive;
	int			k = -1;

	if (bms_is_empty(keys))
		return mode;
	old = MakeSingleTupleTableSlot(desc, heap_routine->slot_callbacks(rel));
	if (!heap_routine->tuple_fetch_row_version(rel, otid, SnapshotAny, old))
		mode = LockTupleExclusive;
	else
	{
		slot_getallattrs(old);
		slot_getallattrs(newslot);
		while (mode == LockTupleNoKeyExclusive && (k = bms_next_member(keys, k)) >= 0)
		{
			int			attno = k + FirstLowInvalidHeapAttributeNumber;
			Form_pg_attribute att;

			if (attno <= 0 || attno > desc->natts)
				continue;
			att = TupleDescAttr(desc, attno - 1);
			if (old->tts_isnull[attno - 1] != newslot->tts_isnull[attno - 1] ||
				(!old->tts_isnull[attno - 1] &&
				 !datumIsEqual(old->tts_values[attno - 1], newslot->tts_values[attno - 1],
							   att->attbyval, att->attlen)))
				mode = LockTupleExclusive;
		}
	}
	ExecDropSingleTupleTableSlot(old);
	bms_free(keys);
	return mode;
}

/*
 * A conflicting row: not written, but answered as written. The executor goes on with
 * the new row it computed from this snapshot (RETURNING projects it, the row counts),
 * and no index entry is made for it.
 */
static TM_Result
pretend_update(Relation rel, ItemPointer otid, TupleTableSlot *slot, LockTupleMode *lockmode,
			   UpdateIndexes *update_indexes)
{
	slot->tts_tableOid = RelationGetRelid(rel);
	ItemPointerCopy(otid, &slot->tts_tid);
	*lockmode = LockTupleExclusive;
	*update_indexes = NO_INDEX_UPDATE;
	return TM_Ok;
}

static inline bool
is_conflict(TM_Result result)
{
	return result == TM_Updated || result == TM_Deleted || result == TM_WouldBlock ||
		result == TM_BeingModified;
}

static TM_Result
strict_tuple_update(Relation rel, ItemPointer otid, TupleTableSlot *slot, CommandId cid,
					Snapshot snapshot, Snapshot crosscheck, bool wait, TM_FailureData *tmfd,
					LockTupleMode *lockmode, UpdateIndexes *update_indexes)
{
	TM_Result	result;

	if (!wait || !occ_active())
		return heap_routine->tuple_update(rel, otid, slot, cid, snapshot, crosscheck, wait,
										  tmfd, lockmode, update_indexes);
	if (xact_doomed)			/* a loser takes no more row locks */
		return pretend_update(rel, otid, slot, lockmode, update_indexes);
#ifndef USE_ASSERT_CHECKING
	/*
	 * heap_update without waiting: TM_BeingModified for any live xmax, even a lock that
	 * would not make it wait (its "no wait" case does not look at lock modes, and an
	 * assertion says no caller uses it: in an assert-enabled build we always take the
	 * path below instead, which costs a row lock).
	 */
	result = heap_routine->tuple_update(rel, otid, slot, cid, snapshot, crosscheck, false,
										tmfd, lockmode, update_indexes);
	if (result != TM_BeingModified)
	{
		if (is_conflict(result))
		{
			doom();
			return pretend_update(rel, otid, slot, lockmode, update_indexes);
		}
		return result;
	}
#endif
	/* Someone holds the row (perhaps in a mode that lets us in, perhaps ourselves). */
	result = lock_no_wait(rel, otid, snapshot, cid, update_lock_mode(rel, otid, slot), tmfd);
	if (!is_conflict(result))	/* locked (nobody else can block now), or ours */
		result = heap_routine->tuple_update(rel, otid, slot, cid, snapshot, crosscheck, true,
											tmfd, lockmode, update_indexes);
	if (is_conflict(result))
	{
		doom();
		return pretend_update(rel, otid, slot, lockmode, update_indexes);
	}
	return result;
}

static TM_Result
strict_tuple_delete(Relation rel, ItemPointer tid, CommandId cid, Snapshot snapshot,
					Snapshot crosscheck, bool wait, TM_FailureData *tmfd, bool changingPart)
{
	TM_Result	result;

	if (!wait || !occ_active())
		return heap_routine->tuple_delete(rel, tid, cid, snapshot, crosscheck, wait, tmfd,
										  changingPart);
	if (xact_doomed)
		return TM_Ok;			/* answered as deleted (RETURNING reads the row at tid) */
	result = heap_routine->tuple_delete(rel, tid, cid, snapshot, crosscheck, false, tmfd,
										changingPart);
	if (result == TM_BeingModified)
	{
		result = lock_no_wait(rel, tid, snapshot, cid, LockTupleExclusive, tmfd);
		if (!is_conflict(result))
			result = heap_routine->tuple_delete(rel, tid, cid, snapshot, crosscheck, true,
												tmfd, changingPart);
	}
	if (is_conflict(result))
	{
		doom();
		return TM_Ok;
	}
	return result;
}

/* SELECT ... FOR UPDATE / FOR KEY SHARE, foreign key checks, ON CONFLICT DO UPDATE. */
static TM_Result
strict_tuple_lock(Relation rel, ItemPointer tid, Snapshot snapshot, TupleTableSlot *slot,
				  CommandId cid, LockTupleMode mode, LockWaitPolicy wait_policy, uint8 flags,
				  TM_FailureData *tmfd)
{
	TM_Result	result;

	/* NOWAIT and SKIP LOCKED keep PostgreSQL's meaning; so does READ COMMITTED. */
	if (wait_policy != LockWaitBlock || (flags & TUPLE_LOCK_FLAG_FIND_LAST_VERSION) ||
		!occ_active())
		return heap_routine->tuple_lock(rel, tid, snapshot, slot, cid, mode, wait_policy,
										flags, tmfd);
	result = xact_doomed ? TM_WouldBlock
		: heap_routine->tuple_lock(rel, tid, snapshot, slot, cid, mode, LockWaitSkip, flags,
								   tmfd);
	if (!is_conflict(result))
		return result;
	/* Not locked; the row this snapshot sees, as if it were. */
	if (!heap_routine->tuple_fetch_row_version(rel, tid, SnapshotAny, slot))
		return result;
	doom();
	tmfd->traversed = false;
	return TM_Ok;
}

/* ---- executor ------------------------------------------------------------------------ */

static bool
is_dml(QueryDesc *queryDesc)
{
	CmdType		op = queryDesc->operation;

	return op == CMD_INSERT || op == CMD_UPDATE || op == CMD_DELETE || op == CMD_MERGE;
}

/*
 * Rows modified by the INSERT/UPDATE/DELETE of a writable CTE: PostgreSQL counts only
 * the statement's own (canSetTag) rows in es_processed. For these we count the rows
 * their ModifyTable node was fed, from row instrumentation that ExecutorStart turns on
 * for such statements only (CTEs are initplans, which planstate_tree_walker visits).
 */
static bool
count_cte_rows(PlanState *ps, void *context)
{
	if (ps == NULL)
		return false;
	if (IsA(ps, ModifyTableState) && !((ModifyTableState *) ps)->canSetTag)
	{
		PlanState  *sub = outerPlanState(ps);

		if (sub != NULL && sub->instrument != NULL)
			*(uint64 *) context += (uint64) (sub->instrument->ntuples +
											 sub->instrument->tuplecount);
	}
	return planstate_tree_walker(ps, count_cte_rows, context);
}

static void
strict_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (strict_enabled && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		(is_dml(queryDesc) || queryDesc->plannedstmt->hasModifyingCTE))
	{
		note_dml();
		if (queryDesc->plannedstmt->hasModifyingCTE)
			queryDesc->instrument_options |= INSTRUMENT_ROWS;
	}
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	/* The relations it writes or locks: conflicts are decided at COMMIT (above). */
	if (!(eflags & EXEC_FLAG_EXPLAIN_ONLY) && occ_active())
		occ_patch_executor(queryDesc);
}

static void
strict_ExecutorEnd(QueryDesc *queryDesc)
{
	uint64		rows = 0;
	bool		count = false;

	/* Read the counts before the executor state is freed. */
	if (strict_enabled && queryDesc->estate != NULL &&
		!(queryDesc->estate->es_top_eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		if (is_dml(queryDesc))
		{
			count = true;
#if PG_VERSION_NUM >= 160000
			rows = queryDesc->estate->es_total_processed;
#else
			rows = queryDesc->estate->es_processed;
#endif
		}
		if (queryDesc->plannedstmt->hasModifyingCTE && queryDesc->planstate != NULL)
		{
			count = true;
			(void) count_cte_rows(queryDesc->planstate, &rows);
		}
	}
	if (occ_npatches > 0)		/* before the executor closes its relations */
		occ_unpatch_executor(queryDesc->estate);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	/* Raised after a clean shutdown of the executor: the statement fails. */
	if (count)
		add_rows(rows);
}

/* ---- settings ------------------------------------------------------------------------- */

static bool
check_next_index_job(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || strcmp(*newval, "fail") == 0 ||
		strcmp(*newval, "invalid") == 0)
		return true;
	GUC_check_errdetail("Valid values are '', 'fail' and 'invalid'.");
	return false;
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("dsql_strict.enabled",
							 "Refuse what Amazon Aurora DSQL refuses.",
							 "A superuser may turn it off for a session (setup scripts).",
							 &strict_enabled, true, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("dsql_strict.row_limit",
							"Rows a transaction may modify (DSQL: 3000); 0 means no limit.",
							NULL, &strict_row_limit, 3000, 0, INT_MAX, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("dsql_strict.index_build",
							 "Set by sys.create_index_async around the CREATE INDEX it runs.",
							 NULL, &strict_index_build, false, PGC_USERSET,
							 GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomStringVariable("dsql_strict.next_index_job",
							   "Fault for the next emulated index job: '', 'fail' or 'invalid'.",
							   NULL, &strict_next_index_job, "", PGC_USERSET,
							   GUC_NOT_IN_SAMPLE, check_next_index_job, NULL, NULL);
	MarkGUCPrefixReserved("dsql_strict");

	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = strict_ProcessUtility;
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = strict_post_parse_analyze;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = strict_ExecutorStart;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = strict_ExecutorEnd;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	CacheRegisterRelcacheCallback(occ_relcache_callback, (Datum) 0);

	heap_routine = GetHeapamTableAmRoutine();
	strict_heap = *heap_routine;
	strict_heap.tuple_update = strict_tuple_update;
	strict_heap.tuple_delete = strict_tuple_delete;
	strict_heap.tuple_lock = strict_tuple_lock;

	/*
	 * DSQL's isolation is snapshot (REPEATABLE READ) for every transaction, however it
	 * begins: the default, above any configuration file, database, role or client
	 * setting (a session's own SET still wins, and strict mode refuses it).
	 */
	if (strict_enabled)
		SetConfigOption("default_transaction_isolation", "repeatable read",
						IsUnderPostmaster ? PGC_SUSET : PGC_POSTMASTER, PGC_S_OVERRIDE);
}
