#!/bin/bash
# Checks the environment and writes what the server needs before it starts.
set -o errexit -o nounset -o pipefail

# shellcheck disable=SC1091
. /opt/bitnami/scripts/libmemcached.sh

memcached_load_env
memcached_validate
memcached_setup_sasl
