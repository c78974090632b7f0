"""schemathesis hooks for tests/e2e.rs: send the binary and NDJSON bodies of docs/openapi.yaml
(remote_write's snappy protobuf, Loki push's protobuf, Elasticsearch's _bulk) as raw bytes."""

import schemathesis

schemathesis.serializer.alias(["application/x-protobuf"], "application/octet-stream")
schemathesis.serializer.alias(["application/x-ndjson"], "text/plain")
