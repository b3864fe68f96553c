#!/bin/bash
# Runs the server in the foreground, replacing this shell (it receives docker stop's SIGTERM).
set -o errexit -o nounset -o pipefail

# shellcheck disable=SC1091
. /opt/bitnami/scripts/libmemcached.sh

memcached_load_env
memcached_validate
memcached_args
[ -z "${MEMCACHED_PASSWORD:-}" ] || export SASL_CONF_PATH="$MEMCACHED_SASL_DIR"
info "** Starting memcached **"
exec "${MEMCACHED_BIN_DIR}/memcached" "${MEMCACHED_ARGS[@]}"
