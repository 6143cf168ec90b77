#!/bin/sh
# SageMaker starts the container as `<image> serve`; anything else is the Lambda runtime's handler argument.
if [ "$1" = "serve" ]; then
    exec python3 -m image_similarity.adapters.sagemaker_server
fi
exec /lambda-entrypoint.sh "$@"
