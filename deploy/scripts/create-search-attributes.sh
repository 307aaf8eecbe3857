#!/bin/sh
# Registers each search attribute named on the command line as a Keyword in NAMESPACE.
# Idempotent: an attribute that is already registered as a Keyword counts as done, so the
# service can run on every `docker-compose up`.
#
# Usage: create-search-attributes.sh NAME...
# Environment (set in docker-compose.yml): TEMPORAL_ADDRESS, NAMESPACE.
set -eu

: "${NAMESPACE:=default}"
if [ "$#" -eq 0 ]; then
  echo "usage: $0 NAME..." >&2
  exit 2
fi

registered() {
  temporal operator search-attribute list --namespace "$NAMESPACE" \
    --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -w -- "$1" | grep -qi keyword
}

for name in "$@"; do
  # A namespace that was just created can take a few seconds to reach every frontend cache.
  attempt=0
  until temporal operator search-attribute create --namespace "$NAMESPACE" \
    --name "$name" --type Keyword --address "$TEMPORAL_ADDRESS" || registered "$name"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 30 ]; then
      echo "could not register search attribute $name in namespace $NAMESPACE" >&2
      exit 1
    fi
    sleep 2
  done
  registered "$name" || {
    echo "search attribute $name is not a Keyword in namespace $NAMESPACE" >&2
    exit 1
  }
  echo "search attribute $name (Keyword) is registered in namespace $NAMESPACE"
done
