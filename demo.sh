#!/usr/bin/env bash
# Sets up tagtrail and runs the demo: simulator -> edge agent -> a private MQTT broker.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/tagtrail demo "$@"
