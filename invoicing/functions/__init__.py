"""Azure Functions bindings: thin handlers that parse requests and call ``invoicing.services``."""
