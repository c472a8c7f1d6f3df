"""The statement check of the SQL sandbox: an allow-list over DuckDB's own parse tree.

DuckDB parses the text (in a connection with nothing attached and external access off) and
serialises the tree as JSON; this module walks it and accepts only what it knows to be safe,
scope by scope:
- exactly one SELECT statement;
- query nodes, table references and expression kinds from a fixed list (anything new or
  unknown, e.g. `(SHOW ...)`, `(DESCRIBE ...)`, parameters, time travel, is refused);
- relations: the views in `VIEWS` (`eod`, `eod_deltas`, `eod_rejects`, `corporate_actions`,
  `action_factors`, `eod_split_adjusted`, `eod_adjusted`), or a CTE *visible at that point*
  (a CTE's name counts only inside the query that defines it, after its definition), so an
  inner CTE named like a file cannot make an outer `FROM '<file>'` pass;
- functions from `SAFE_FUNCTIONS`, table functions from `SAFE_TABLE_FUNCTIONS`, all in the
  default schema;
- nesting at most `MAX_DEPTH` levels (deeper trees are refused, never a RecursionError).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb

from query_api._sql_allowlist import SAFE_FUNCTIONS, SAFE_TABLE_FUNCTIONS
from stockdata.errors import InvalidInputError

#: Relations a query may name (besides the CTEs in scope).
VIEWS = frozenset(
    {
        "eod",
        "eod_deltas",
        "eod_rejects",
        "corporate_actions",
        "action_factors",
        "eod_split_adjusted",
        "eod_adjusted",
    }
)
#: How deep the parse tree may nest (a CASE inside a CASE is about three levels).
MAX_DEPTH = 300

_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE"})
_TABLE_REFS = frozenset(
    {"BASE_TABLE", "JOIN", "SUBQUERY", "TABLE_FUNCTION", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
)
_MODIFIERS = frozenset(
    {"ORDER_MODIFIER", "LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER", "DISTINCT_MODIFIER"}
)
_ORDER_TYPES = frozenset({"ORDER_DEFAULT", "ASCENDING", "DESCENDING", "INVALID"})
_EXPRESSIONS = frozenset(
    {
        "BETWEEN",
        "CASE",
        "CAST",
        "COLLATE",
        "COLUMN_REF",
        "COMPARISON",
        "CONJUNCTION",
        "CONSTANT",
        "FUNCTION",
        "LAMBDA",
        "LAMBDA_REF",
        "OPERATOR",
        "POSITIONAL_REFERENCE",
        "STAR",
        "SUBQUERY",
        "WINDOW",
    }
)
#: Keys that hold no SQL but type descriptors (CTE maps are walked by `_query`; a
#: CONSTANT's `value` is skipped too).
_NOT_WALKED = frozenset({"cte_map", "type_info", "cast_type"})
_NOT_SQL = " query the views " + ", ".join(sorted(VIEWS))


def refuse(reason: str) -> InvalidInputError:
    """The error every refusal raises (problem type `sql-refused`)."""
    return InvalidInputError(f"SQL refused: {reason}", code="sql-refused")


class _Walker:
    """One pass over a serialised statement, with the CTE names visible at each point."""

    def __init__(self) -> None:
        self.nodes = 0

    def visit(self, item: Any, scope: frozenset[str], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise refuse(f"the query is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, list):
            for value in item:
                self.visit(value, scope, depth + 1)
            return
        if not isinstance(item, dict):
            return
        self.nodes += 1
        cls = item.get("class")
        kind = item.get("type")
        if isinstance(cls, str):
            self._expression(item, cls, scope, depth)
        elif isinstance(kind, str):
            if kind in _QUERY_NODES:
                self._query(item, kind, scope, depth)
                return
            if kind in _TABLE_REFS:
                self._table_ref(item, kind, scope, depth)
                if kind == "TABLE_FUNCTION":
                    function = item.get("function") or {}
                    self.visit(function.get("children"), scope, depth + 1)
                    rest = {k: v for k, v in item.items() if k != "function"}
                    self._children(rest, scope, depth)
                    return
            elif kind not in _MODIFIERS and kind not in _ORDER_TYPES:
                raise refuse(f"{kind.lower().replace('_', ' ')} is not allowed;{_NOT_SQL}")
        self._children(item, scope, depth)

    def _children(self, item: dict[str, Any], scope: frozenset[str], depth: int) -> None:
        for key, value in item.items():
            if key in _NOT_WALKED or (key == "value" and item.get("class") == "CONSTANT"):
                continue
            if isinstance(value, dict | list):
                self.visit(value, scope, depth + 1)

    def _query(self, item: dict[str, Any], kind: str, scope: frozenset[str], depth: int) -> None:
        named = item.get("named_param_map")
        if named:
            raise refuse("named parameters are not allowed")
        inner = scope
        for entry in (item.get("cte_map") or {}).get("map", []):
            name = str(entry.get("key", "")).lower()
            body = entry.get("value", {})
            # A CTE sees the CTEs before it; a recursive one also itself (its node says so).
            self.visit(body.get("query"), inner, depth + 1)
            inner = inner | {name}
        if kind == "RECURSIVE_CTE_NODE":
            inner = inner | {str(item.get("cte_name", "")).lower()}
        self._children(item, inner, depth)

    def _table_ref(
        self, item: dict[str, Any], kind: str, scope: frozenset[str], depth: int
    ) -> None:
        if item.get("at_clause"):
            raise refuse("time travel (AT ...) is not allowed")
        if kind == "BASE_TABLE":
            name = str(item.get("table_name", "")).lower()
            schema = str(item.get("schema_name", "")).lower()
            catalog = str(item.get("catalog_name", "")).lower()
            if (
                catalog
                or schema not in {"", "main"}
                or not ((name in scope and not schema) or name in VIEWS)
            ):
                shown = ".".join(p for p in (catalog, schema, name) if p)
                raise refuse(f"relation {shown!r} is not allowed;{_NOT_SQL}")
        elif kind == "TABLE_FUNCTION":
            function = item.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if (
                name not in SAFE_TABLE_FUNCTIONS
                or function.get("schema")
                or function.get("catalog")
            ):
                raise refuse(f"table function {name}() is not allowed;{_NOT_SQL}")

    def _expression(
        self, item: dict[str, Any], cls: str, scope: frozenset[str], depth: int
    ) -> None:
        if cls not in _EXPRESSIONS:
            raise refuse(f"{cls.lower().replace('_', ' ')} expressions are not allowed")
        if cls in {"FUNCTION", "WINDOW"}:
            name = str(item.get("function_name", "")).lower()
            schema = str(item.get("schema", "")).lower()
            if name not in SAFE_FUNCTIONS or schema not in {"", "main"} or item.get("catalog"):
                raise refuse(f"function {name}() is not allowed")
            if item.get("export_state"):
                raise refuse("aggregate states (EXPORT_STATE) are not allowed")


def _strip_leading_comments(sql: str) -> str:
    text = sql.lstrip()
    while True:
        if text.startswith("--"):
            text = text.split("\n", 1)[1].lstrip() if "\n" in text else ""
        elif text.startswith("/*"):
            end = text.find("*/")
            text = text[end + 2 :].lstrip() if end >= 0 else ""
        else:
            return text


_READ_KEYWORDS = frozenset({"select", "with", "from", "values", "("})


class StatementChecker:
    """Parses SQL with DuckDB (in memory, nothing attached) and allows only plain reads."""

    def __init__(self, *, max_length: int) -> None:
        self._max_length = max_length
        self._lock = threading.Lock()
        self._con = duckdb.connect(
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "python_enable_replacements": False,
                "lock_configuration": True,
            }
        )

    def check(self, sql: str) -> str:
        """The one statement in `sql`, or InvalidInputError(code="sql-refused") saying why not."""
        if not sql.strip():
            raise refuse("the query is empty")
        if len(sql) > self._max_length:
            raise refuse(f"the query is longer than {self._max_length} characters")
        if "\x00" in sql:
            raise refuse("the query contains a NUL character")
        try:
            # The locked connection's parser: IMPORT DATABASE reads files while parsing, and
            # the module-level default connection would let it.
            with self._lock:
                statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise InvalidInputError(
                f"SQL does not parse: {str(exc).strip().splitlines()[0]}", code="sql-invalid"
            ) from exc
        if len(statements) != 1:
            raise refuse(f"exactly one statement is allowed, got {len(statements)}")
        statement = statements[0]
        if statement.type != duckdb.StatementType.SELECT:
            raise refuse(f"only SELECT or WITH queries are allowed, not {statement.type.name}")
        text = statement.query
        head = _strip_leading_comments(text)
        first = head[:1] if head.startswith("(") else head.split(None, 1)[0].lower()
        if first not in _READ_KEYWORDS:
            raise refuse(f"only SELECT or WITH queries are allowed, not {first.upper()}")
        with self._lock:
            try:
                row = self._con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()
            except duckdb.Error as exc:
                raise refuse(f"the query cannot be checked ({str(exc).splitlines()[0]})") from exc
        try:
            tree = json.loads(row[0]) if row else {"error": True}
        except RecursionError:
            raise refuse(f"the query is nested more than {MAX_DEPTH} levels deep") from None
        if tree.get("error"):
            raise refuse(
                f"only SELECT or WITH queries are allowed ({tree.get('error_message', '')})"
            )
        statements_json = tree.get("statements")
        if not isinstance(statements_json, list) or len(statements_json) != 1:
            raise refuse("exactly one statement is allowed")
        _Walker().visit(statements_json[0].get("node"), frozenset(), 0)
        return text

    def close(self) -> None:
        self._con.close()
