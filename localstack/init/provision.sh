#!/bin/sh
# Init hook of the compose file: install asyncmq-cloud from the mounted source and create
# every table and queue the backend needs with its own `provision` (idempotent).
set -eu
pip install --quiet --disable-pip-version-check "/src[sqs,dynamodb]"
args=""
for queue in $(echo "${QUEUES:-default}" | tr ',' ' '); do
  args="$args --queue $queue"
done
asyncmq-cloud provision --dry-run $args
asyncmq-cloud provision $args
echo "asyncmq-cloud: provisioned on $AWS_ENDPOINT_URL"
