"""CDK app of the Image Similarity API: a root stack with parameters and conditional nested stacks."""
