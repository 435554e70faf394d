# Sourced by scripts/test and scripts/flood: ensure_postgres starts a PostgreSQL for them.
# shellcheck shell=bash

# tower-apikey-postgres's tests (postgres/tests/) need a real PostgreSQL; they fail,
# never skip, without one. With APIKEY_TEST_DATABASE_URL set, that database is used as
# it is. Otherwise (as root, as CI runs) Debian's PostgreSQL is installed if missing,
# its `main` cluster started, and a role and database `apikey_test` created if absent.
# The role gets CREATEROLE: the migration tests make roles of their own (a squatter, an
# owner, a least-privileged app role) and drop them again.
# The tests make their own uniquely named tables, and a throwaway cluster of their own
# (from APIKEY_TEST_PG_BINDIR) for the outage test, so parallel runs do not collide.
ensure_postgres() {
    if [[ -n "${APIKEY_TEST_DATABASE_URL:-}" ]]; then
        echo "using APIKEY_TEST_DATABASE_URL"
        return
    fi
    if [[ $EUID -ne 0 ]]; then
        echo "error: set APIKEY_TEST_DATABASE_URL to a PostgreSQL database the tests may" \
            "create tables in, or run as root so that this script can start one" >&2
        exit 1
    fi
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null ||
        ! command -v pg_ctlcluster >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local version status port
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
        pg_createcluster "$version" main >/dev/null
    fi
    read -r port status < <(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3, $4 }')
    if [[ $status != online* ]]; then
        pg_ctlcluster "$version" main start
    fi
    for _ in $(seq 100); do
        pg_isready -q -h 127.0.0.1 -p "$port" && break
        sleep 0.1
    done
    # From `/`, which the postgres user can enter, unlike the checkout.
    (cd / && runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1) <<'SQL'
SELECT 'CREATE ROLE apikey_test LOGIN PASSWORD ''apikey_test'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'apikey_test') \gexec
SELECT 'CREATE DATABASE apikey_test OWNER apikey_test'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'apikey_test') \gexec
ALTER ROLE apikey_test CREATEROLE;
SQL
    export APIKEY_TEST_DATABASE_URL="postgres://apikey_test:apikey_test@127.0.0.1:$port/apikey_test"
    export APIKEY_TEST_PG_BINDIR="/usr/lib/postgresql/$version/bin"
    echo "PostgreSQL $version on port $port, database apikey_test"
}
