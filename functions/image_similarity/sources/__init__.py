"""Where an image's bytes come from: base64 in the body, http(s) URLs, S3 objects."""
