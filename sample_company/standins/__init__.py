"""The sample company's systems as API stand-ins on 127.0.0.1 (one module per vendor)."""
