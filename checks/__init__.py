"""The quality gate: table contracts (schema, description, suite) and the gate that runs them."""
