"""Errors of a request to the endpoint (importable without the openai package, for a fast CLI)."""


class LLMError(RuntimeError):
    """A request that did not produce a completion."""


class RequestRefused(LLMError):
    """The server refused this request for good (4xx other than 401/403/404/408/409/429)."""


class RetriesExhausted(LLMError):
    """Every attempt failed with a retryable error."""


class EndpointFatal(LLMError):
    """The endpoint cannot serve this run at all (bad key, unknown model, wrong URL)."""


class EndpointUnreachable(EndpointFatal):
    """Nothing answers at the endpoint (connection refused, DNS failure, TLS failure) before it ever answered."""


class MalformedResponse(LLMError):
    """A 200 reply that is not a usable chat completion."""
