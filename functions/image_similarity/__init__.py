"""Image similarity: 512-float image embeddings and pairwise similarity from one pretrained ONNX model."""
