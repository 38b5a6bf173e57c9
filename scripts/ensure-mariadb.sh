#!/usr/bin/env bash
# Runs before `npm test` and `npm run demo`: both start a throwaway MariaDB from Debian's
# mariadb-server. Installs it when missing (as root, with apt-get), or says what to run.
set -euo pipefail
[ -n "${TEST_MYSQL_URL:-}" ] && exit 0
for bin in mariadbd mysqld; do
  if command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "mariadb-server is missing: installing it with apt-get (tests and the demo start their own throwaway instance)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
  exit 0
fi
echo "mariadb-server is missing: run 'sudo apt-get install -y mariadb-server', or set TEST_MYSQL_URL=mysql://user:pw@host:port" >&2
exit 1
