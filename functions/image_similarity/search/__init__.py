"""Collections of embeddings: add, search and delete, on an embedded local store or on Amazon S3 Vectors."""
