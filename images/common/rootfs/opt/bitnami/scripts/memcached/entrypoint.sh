#!/bin/bash
# The container's entrypoint: set up when the default command runs, then run the command.
set -o errexit -o nounset -o pipefail

# shellcheck disable=SC1091
. /opt/bitnami/scripts/libmemcached.sh

if [ "$*" = "/opt/bitnami/scripts/memcached/run.sh" ]; then
    info "** Starting memcached setup **"
    /opt/bitnami/scripts/memcached/setup.sh
    info "** memcached setup finished! **"
fi
exec "$@"
