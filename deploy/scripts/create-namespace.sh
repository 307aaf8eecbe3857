#!/bin/sh
# Waits until the Temporal frontend answers, then registers the namespace unless it exists.
#
# Environment (set in docker-compose.yml): TEMPORAL_ADDRESS, NAMESPACE, NAMESPACE_RETENTION.
set -eu

: "${NAMESPACE:=default}"
: "${NAMESPACE_RETENTION:=72h}"

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS was not healthy after 120s" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" \
  --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE already exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" \
    --retention "$NAMESPACE_RETENTION" --address "$TEMPORAL_ADDRESS"
  echo "namespace $NAMESPACE created"
fi
