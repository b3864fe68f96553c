#!/bin/bash
# Checks of environment values.

# A whole number made only of digits (no sign).
is_uint() {
    [[ "${1:-}" =~ ^[0-9]+$ ]]
}

# A whole number above zero.
is_positive_int() {
    is_uint "${1:-}" && [[ "${1}" =~ [1-9] ]]
}

# yes/true/1 in any case.
is_boolean_yes() {
    case "$(echo "${1:-}" | tr '[:upper:]' '[:lower:]')" in
        yes | true | 1) return 0 ;;
        *) return 1 ;;
    esac
}

# An unprivileged TCP port: 1024-65535.
is_unprivileged_port() {
    is_uint "${1:-}" && [ "${#1}" -le 5 ] && [ "$1" -ge 1024 ] && [ "$1" -le 65535 ]
}
