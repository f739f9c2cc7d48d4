"""Shopify's restrictions on bulk query documents, with Shopify's exact userError messages.

Messages are the ones captured from live shops (reference/shopify-bulk-api.md §4.1); each
becomes a ``userErrors`` entry with ``field: ["query"]`` and, from 2025-01, ``code: INVALID``.

Nesting depth counts connections *below* the root connection: ``orders > lineItems`` is
depth 1, ``orders > lineItems > X`` depth 2 (the maximum), one more level is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
)

MAX_CONNECTIONS = 5
MAX_DEPTH = 2
MAX_QUERY_BYTES = 65535  # observed limit on the inner query text (reference §1.1)

MSG_EMPTY = "Invalid bulk query: syntax error, unexpected end of file"
MSG_OPERATION = "Invalid operation type. Only `query` operations are supported."
MSG_NO_CONNECTION = "Bulk queries must contain at least one connection."
MSG_TOO_MANY = "Bulk queries cannot contain more than 5 connections."
MSG_DEPTH = "Bulk queries cannot contain connections with a nesting depth greater than 2."
MSG_TOP_NODE = "Bulk queries cannot contain a top level `node` field."
MSG_LIST = "Queries that contain a connection field within a list field are not currently supported."
MSG_EDGES = ("All connection fields in a bulk query must select their contents using 'edges' > 'node', "
             "e.g: 'orders { edges { node {'. Selecting via 'nodes' is not supported. "
             "Invalid connection fields: {names}.")
MSG_PARENT_ID = ("The parent 'node' field for a nested connection must select the 'id' field without an alias "
                 "and must be of 'ID' return type. Connection fields without 'id': {names}.")

_UNDEFINED_FIELD = re.compile(r"^Cannot query field '([^']+)' on type '([^']+)'\.")
_UNKNOWN_ARG = re.compile(r"^Unknown argument '([^']+)' on field '([^'.]+)\.([^']+)'\.")


def ruby_style(error: GraphQLError) -> tuple[str, dict[str, str]]:
    """graphql-core's validation message in graphql-ruby's (Shopify's) wording + extensions."""
    msg = error.message
    m = _UNDEFINED_FIELD.match(msg)
    if m:
        return (f"Field '{m.group(1)}' doesn't exist on type '{m.group(2)}'",
                {"code": "undefinedField", "typeName": m.group(2), "fieldName": m.group(1)})
    m = _UNKNOWN_ARG.match(msg)
    if m:
        return (f"Field '{m.group(3)}' doesn't accept argument '{m.group(1)}'",
                {"code": "argumentNotAccepted", "name": m.group(3), "typeName": "Field",
                 "argumentName": m.group(1)})
    if msg.startswith("Syntax Error"):
        return msg, {"code": "parseError"}
    return msg, {"code": "GRAPHQL_VALIDATION_FAILED"}


def _is_list(t: object) -> bool:
    while isinstance(t, GraphQLNonNull | GraphQLList):
        if isinstance(t, GraphQLList):
            return True
        t = t.of_type
    return False


def is_connection_type(t: GraphQLOutputType) -> bool:
    named = get_named_type(t)
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection") and "edges" in named.fields


def _node_type(connection: GraphQLObjectType) -> GraphQLNamedType:
    """The type of ``edges { node }`` of a connection type."""
    edges = get_named_type(connection.fields["edges"].type)
    assert isinstance(edges, GraphQLObjectType)
    return get_named_type(edges.fields["node"].type)


# output types with fields, the only ones a selection set can walk into
_Composite = GraphQLObjectType | GraphQLInterfaceType


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    connections: int = 0
    too_deep: bool = False
    in_list: bool = False
    bad_edges: list[str] = field(default_factory=list)
    without_id: list[str] = field(default_factory=list)
    top_node: bool = False

    def fields(self, sel: SelectionSetNode, parent: _Composite) -> list[tuple[FieldNode, _Composite]]:
        out: list[tuple[FieldNode, _Composite]] = []
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append((s, parent))
            elif isinstance(s, InlineFragmentNode):
                cond = self.schema.get_type(s.type_condition.name.value) if s.type_condition else parent
                out.extend(self.fields(s.selection_set, cond if isinstance(cond, GraphQLObjectType) else parent))
            elif isinstance(s, FragmentSpreadNode) and s.name.value in self.fragments:
                frag = self.fragments[s.name.value]
                cond = self.schema.get_type(frag.type_condition.name.value)
                out.extend(self.fields(frag.selection_set, cond if isinstance(cond, GraphQLObjectType) else parent))
        return out

    def walk(self, sel: SelectionSetNode, parent: _Composite, depth: int, in_list: bool,
             node_sel: SelectionSetNode | None, top: bool) -> None:
        for f, owner in self.fields(sel, parent):
            name = f.name.value
            if top and name in {"node", "nodes"}:
                self.top_node = True
                continue
            fdef = owner.fields.get(name)
            if fdef is None:
                continue
            named = get_named_type(fdef.type)
            if isinstance(named, GraphQLObjectType) and is_connection_type(named):
                self.connections += 1
                level = depth  # the root connection is level 0
                if level > MAX_DEPTH:
                    self.too_deep = True
                if in_list:
                    self.in_list = True
                if node_sel is not None and not any(
                    nf.name.value == "id" and nf.alias is None for nf, _ in self.fields(node_sel, parent)
                ):
                    self.without_id.append(name)
                child_sel = self._edges_node(f)
                if child_sel is None:
                    self.bad_edges.append(name)
                    continue
                node_named = _node_type(named)
                if isinstance(node_named, _Composite):
                    self.walk(child_sel, node_named, depth + 1, False, child_sel, False)
            elif f.selection_set is not None and isinstance(named, _Composite):
                self.walk(f.selection_set, named, depth, in_list or _is_list(fdef.type), node_sel, False)

    def _edges_node(self, f: FieldNode) -> SelectionSetNode | None:
        if f.selection_set is None:
            return None
        found = None
        for s in f.selection_set.selections:
            if isinstance(s, FieldNode) and s.name.value == "nodes":
                return None
            if isinstance(s, FieldNode) and s.name.value == "edges" and s.selection_set is not None:
                for n in s.selection_set.selections:
                    if isinstance(n, FieldNode) and n.name.value == "node" and n.selection_set is not None:
                        found = n.selection_set
        return found


def bulk_query_errors(text: str, schema: GraphQLSchema) -> list[str]:
    """Every reason Shopify would refuse ``text`` as a bulk query (``[]``: accepted)."""
    if not text.strip():
        return [MSG_EMPTY]
    size = len(text.encode())
    if size > MAX_QUERY_BYTES:
        return [f"Query is too large ({size} bytes; maximum is {MAX_QUERY_BYTES} bytes)"]
    try:
        doc: DocumentNode = parse(text)
    except GraphQLError as exc:
        return [f"Invalid bulk query: {exc.message}"]
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if any(op.operation != OperationType.QUERY for op in ops):
        return [MSG_OPERATION]
    schema_errors = validate(schema, doc)
    if schema_errors:
        return [ruby_style(e)[0] for e in schema_errors]
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    w = _Walk(schema, fragments)
    root = schema.query_type
    assert root is not None
    for op in ops:
        w.walk(op.selection_set, root, 0, False, None, True)
    errors = []
    if w.top_node:
        errors.append(MSG_TOP_NODE)
    if w.connections == 0:
        errors.append(MSG_NO_CONNECTION)
    if w.connections > MAX_CONNECTIONS:
        errors.append(MSG_TOO_MANY)
    if w.too_deep:
        errors.append(MSG_DEPTH)
    if w.in_list:
        errors.append(MSG_LIST)
    if w.bad_edges:
        errors.append(MSG_EDGES.replace("{names}", ", ".join(f"'{n}'" for n in w.bad_edges)))
    if w.without_id:
        errors.append(MSG_PARENT_ID.replace("{names}", ", ".join(w.without_id)))
    return errors
