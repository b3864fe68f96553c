#!/bin/bash
# Run once while the image is built: directories the non-root user 1001 writes to.
set -o errexit -o nounset -o pipefail

# shellcheck disable=SC1091
. /opt/bitnami/scripts/libmemcached.sh

mkdir -p "$MEMCACHED_CONF_DIR" "$MEMCACHED_SASL_DIR" "${MEMCACHED_BASE_DIR}/conf.default"
chmod -R g+rwX "$MEMCACHED_CONF_DIR"
chown -R 1001:root "$MEMCACHED_CONF_DIR"
