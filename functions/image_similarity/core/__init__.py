"""The service's pure logic: the API contract, image decoding, the embedder, errors, settings and the request log."""
