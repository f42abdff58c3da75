#!/bin/sh
# Entry point of the mlac-audit images (CPU and CUDA): one image, three roles chosen by the first argument.
#
#   api          the REST service (`mlac-audit serve`); with RAY_ADDRESS=host:port it first joins the Ray
#                cluster as a node without CPUs or GPUs, because a Ray driver must run on a cluster node
#   ray-head     a Ray head node (GCS + dashboard); extra arguments go to `ray start`
#   ray-worker   a Ray worker node joining RAY_ADDRESS; extra arguments go to `ray start`
#   anything else is run as a command (e.g. `mlac-audit --help`, `bash`)
#
# Ray token authentication is always on (RAY_AUTH_MODE=token): the token is read from the file at
# RAY_AUTH_TOKEN_PATH (default /run/secrets/ray_auth_token, a Docker or Kubernetes secret) or from
# RAY_AUTH_TOKEN. Usage statistics are off. Secrets can be given as files: VAR_FILE=/path sets VAR to the
# file's content (unless VAR is already set) for DATABASE_URL and for MLAC_* settings whose names end in
# KEY, KEYS, TOKEN, SECRET or PASSWORD (e.g. MLAC_ADMIN_KEY_FILE -> MLAC_ADMIN_KEY).
set -eu

export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
# Tokenizer thread pools and forked Ray workers do not mix (set here: linters take the name for a secret).
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
RAY_AUTH_TOKEN_PATH="${RAY_AUTH_TOKEN_PATH:-/run/secrets/ray_auth_token}"
export RAY_AUTH_TOKEN_PATH

RAY_GCS_PORT="${RAY_GCS_PORT:-6379}"
RAY_DASHBOARD_PORT="${RAY_DASHBOARD_PORT:-8265}"
RAY_CLIENT_PORT="${RAY_CLIENT_PORT:-10001}"
# The node's dashboard agent: its /api/healthz is what the health check asks.
RAY_DASHBOARD_AGENT_PORT="${RAY_DASHBOARD_AGENT_PORT:-52365}"
MLAC_PORT="${MLAC_PORT:-8000}"
# Where the health check finds this container's role.
ROLE_FILE="${MLAC_ROLE_FILE:-/tmp/mlac-role}"

die() {
    echo "mlac-entrypoint: error: $*" >&2
    exit 64
}

# VAR_FILE=/path -> VAR=<content of /path>, for DATABASE_URL and secret-named MLAC_* settings only.
load_file_secrets() {
    for name in $(env | sed -n 's/^\(DATABASE_URL_FILE\|MLAC_[A-Z0-9_]*\(KEY\|KEYS\|TOKEN\|SECRET\|PASSWORD\)_FILE\)=.*/\1/p'); do
        target="${name%_FILE}"
        path="$(printenv "$name")"
        if [ -n "$(printenv "$target" || true)" ]; then
            continue
        fi
        [ -r "$path" ] || die "$name points at '$path', which is not a readable file: mount the secret there or unset $name"
        value="$(cat "$path")"
        export "$target=$value"
    done
}

# Token auth is on, so every node and every driver needs the cluster's token.
require_token() {
    if [ -n "${RAY_AUTH_TOKEN:-}" ]; then
        return 0
    fi
    [ -s "$RAY_AUTH_TOKEN_PATH" ] || die "Ray token authentication is on but no token was found at RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH: create it as described in docker/secrets/README.md and mount it there (or set RAY_AUTH_TOKEN)"
}

require_ray_address() {
    [ -n "${RAY_ADDRESS:-}" ] || die "$1 needs RAY_ADDRESS=host:port of the Ray head's GCS (e.g. ray-head:6379)"
}

role="${1:-api}"
if [ "$#" -gt 0 ]; then
    shift
fi
load_file_secrets

case "$role" in
    api)
        printf 'api\n' >"$ROLE_FILE"
        case "${RAY_ADDRESS:-}" in
            "")
                # Embedded default: the service starts a local Ray that makes its own token.
                if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
                    unset RAY_AUTH_TOKEN_PATH
                fi
                ;;
            ray://*)
                require_token
                ;;
            *)
                require_token
                ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats
                ;;
        esac
        exec mlac-audit serve --host "${MLAC_HOST:-0.0.0.0}" --port "$MLAC_PORT" "$@"
        ;;
    ray-head)
        printf 'ray-head\n' >"$ROLE_FILE"
        require_token
        # 0.0.0.0 inside the container network only: compose publishes the dashboard on 127.0.0.1.
        exec ray start --head --block --disable-usage-stats \
            --port="$RAY_GCS_PORT" \
            --ray-client-server-port="$RAY_CLIENT_PORT" \
            --dashboard-host=0.0.0.0 --dashboard-port="$RAY_DASHBOARD_PORT" \
            --dashboard-agent-listen-port="$RAY_DASHBOARD_AGENT_PORT" \
            "$@"
        ;;
    ray-worker)
        printf 'ray-worker\n' >"$ROLE_FILE"
        require_token
        require_ray_address ray-worker
        exec ray start --address="$RAY_ADDRESS" --block --disable-usage-stats \
            --dashboard-agent-listen-port="$RAY_DASHBOARD_AGENT_PORT" \
            "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
