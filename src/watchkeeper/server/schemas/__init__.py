"""The API's request and response models (pydantic): the OpenAPI document's components.

Responses are validated against their model on the way out (except the ingest routes, which
build their small bodies directly); a response model allows fields beyond those it names, so
a field added to a body is never dropped silently. Request bodies keep their hand-written
parsers (the exact accepted forms and error messages, and a fast path for large batches):
their models document the forms and are checked against the parsers by the tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    """A response body: the named fields, and any others the service adds."""

    model_config = ConfigDict(extra="allow")


class In(BaseModel):
    """A documented request body (parsed by hand; the model documents it)."""

    model_config = ConfigDict(extra="forbid")
