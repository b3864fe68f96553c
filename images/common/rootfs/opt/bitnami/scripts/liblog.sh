#!/bin/bash
# Logging for the image's scripts: one line per message on stderr, prefixed with the
# application name, the time and the level. debug lines show only with BITNAMI_DEBUG=true.

RESET='\033[0m'
CYAN='\033[38;5;6m'
YELLOW='\033[38;5;3m'
RED='\033[38;5;1m'
MAGENTA='\033[38;5;5m'

stderr_print() {
    printf "%b\\n" "${*}" >&2
}

log() {
    stderr_print "${CYAN}${MODULE:-} ${MAGENTA}$(date "+%T.%2N ")${RESET}${*}"
}

info() { log "INFO  ==> ${*}"; }
warn() { log "${YELLOW}WARN ${RESET} ==> ${*}"; }
error() { log "${RED}ERROR${RESET} ==> ${*}"; }
debug() {
    case "${BITNAMI_DEBUG:-false}" in
        true | yes | 1) log "DEBUG ==> ${*}" ;;
    esac
}
