"""GraphQL documents in a mapping: parsed and checked (syntax, operations, variables, fields against a schema)."""
