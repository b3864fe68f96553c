#!/bin/bash
# The memcached image's settings: environment defaults, their checks, the SASL set-up and the
# server's command line.

# shellcheck disable=SC1091
. /opt/bitnami/scripts/liblog.sh
. /opt/bitnami/scripts/libvalidations.sh

export MODULE=memcached
export MEMCACHED_BASE_DIR="/opt/bitnami/memcached"
export MEMCACHED_BIN_DIR="${MEMCACHED_BASE_DIR}/bin"
export MEMCACHED_CONF_DIR="${MEMCACHED_BASE_DIR}/conf"
export MEMCACHED_SASL_DIR="${MEMCACHED_CONF_DIR}/sasl2"
export MEMCACHED_SASL_DB="${MEMCACHED_CONF_DIR}/memcached.sasldb"

# Reads VAR from VAR_FILE when that is set (secrets mounted as files). Exits on a file that
# cannot be read.
memcached_file_env() {
    local var="$1" file_var="${1}_FILE"
    if [ -n "${!file_var:-}" ]; then
        if [ ! -r "${!file_var}" ]; then
            error "${file_var}: cannot read '${!file_var}'"
            exit 1
        fi
        export "${var}=$(< "${!file_var}")"
    fi
}

memcached_load_env() {
    local v
    for v in MEMCACHED_LISTEN_ADDRESS MEMCACHED_PORT_NUMBER MEMCACHED_CACHE_SIZE \
        MEMCACHED_MAX_CONNECTIONS MEMCACHED_THREADS MEMCACHED_MAX_ITEM_SIZE \
        MEMCACHED_EXTRA_FLAGS MEMCACHED_USERNAME MEMCACHED_PASSWORD MEMCACHED_METRICS_PORT; do
        memcached_file_env "$v"
    done
    export MEMCACHED_PORT_NUMBER="${MEMCACHED_PORT_NUMBER:-11211}"
    export MEMCACHED_USERNAME="${MEMCACHED_USERNAME:-root}"
}

# Stops with one line naming the first bad value.
memcached_validate() {
    local v
    if ! is_unprivileged_port "$MEMCACHED_PORT_NUMBER"; then
        error "MEMCACHED_PORT_NUMBER: '$MEMCACHED_PORT_NUMBER' is not a port number in 1024-65535"
        exit 1
    fi
    for v in MEMCACHED_CACHE_SIZE MEMCACHED_MAX_CONNECTIONS MEMCACHED_THREADS; do
        if [ -n "${!v:-}" ] && ! is_positive_int "${!v}"; then
            error "$v: '${!v}' is not a positive whole number"
            exit 1
        fi
    done
    if [ -n "${MEMCACHED_METRICS_PORT:-}" ] && ! is_unprivileged_port "$MEMCACHED_METRICS_PORT"; then
        error "MEMCACHED_METRICS_PORT: '$MEMCACHED_METRICS_PORT' is not a port number in 1024-65535"
        exit 1
    fi
    # -I takes a number with an optional k or m suffix.
    if [ -n "${MEMCACHED_MAX_ITEM_SIZE:-}" ] && ! [[ "$MEMCACHED_MAX_ITEM_SIZE" =~ ^[1-9][0-9]*[kKmM]?$ ]]; then
        error "MEMCACHED_MAX_ITEM_SIZE: '$MEMCACHED_MAX_ITEM_SIZE' is not a size such as 1048576, 512k or 2m"
        exit 1
    fi
}

# With a password: a sasldb holding the user and a SASL configuration offering PLAIN.
memcached_setup_sasl() {
    [ -n "${MEMCACHED_PASSWORD:-}" ] || return 0
    info "Enabling SASL authentication for user '${MEMCACHED_USERNAME}'"
    mkdir -p "$MEMCACHED_SASL_DIR"
    cat > "${MEMCACHED_SASL_DIR}/memcached.conf" <<CONF
mech_list: plain
sasldb_path: ${MEMCACHED_SASL_DB}
CONF
    rm -f "$MEMCACHED_SASL_DB"
    printf '%s' "$MEMCACHED_PASSWORD" \
        | saslpasswd2 -f "$MEMCACHED_SASL_DB" -a memcached -c -p "$MEMCACHED_USERNAME"
}

# The server's arguments, into the array MEMCACHED_ARGS.
memcached_args() {
    MEMCACHED_ARGS=(-p "$MEMCACHED_PORT_NUMBER")
    [ -z "${MEMCACHED_LISTEN_ADDRESS:-}" ] || MEMCACHED_ARGS+=(-l "$MEMCACHED_LISTEN_ADDRESS")
    [ -z "${MEMCACHED_CACHE_SIZE:-}" ] || MEMCACHED_ARGS+=(-m "$MEMCACHED_CACHE_SIZE")
    [ -z "${MEMCACHED_MAX_CONNECTIONS:-}" ] || MEMCACHED_ARGS+=(-c "$MEMCACHED_MAX_CONNECTIONS")
    [ -z "${MEMCACHED_THREADS:-}" ] || MEMCACHED_ARGS+=(-t "$MEMCACHED_THREADS")
    [ -z "${MEMCACHED_MAX_ITEM_SIZE:-}" ] || MEMCACHED_ARGS+=(-I "$MEMCACHED_MAX_ITEM_SIZE")
    [ -z "${MEMCACHED_PASSWORD:-}" ] || MEMCACHED_ARGS+=(-S)
    # The Prometheus endpoint, on every address of the container.
    [ -z "${MEMCACHED_METRICS_PORT:-}" ] || MEMCACHED_ARGS+=(-o "metrics_listen=0.0.0.0:${MEMCACHED_METRICS_PORT}")
    if [ -n "${MEMCACHED_EXTRA_FLAGS:-}" ]; then
        local extra
        read -r -a extra <<< "$MEMCACHED_EXTRA_FLAGS"
        MEMCACHED_ARGS+=("${extra[@]}")
    fi
}
