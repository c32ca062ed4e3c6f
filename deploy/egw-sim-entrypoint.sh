#!/bin/sh
# Container entry point of egw-sim: the environment chooses what to simulate.
#   EGW_SIM_PROFILE  profile name (egw-sim --help lists them), default solaredge
#   EGW_SIM_PORT     TCP port, default 502
#   EGW_SIM_UNIT_ID  Modbus unit id, default 1
#   EGW_SIM_SPEED    clock speed-up factor, default 1
set -eu
exec egw-sim --host "${EGW_SIM_HOST:-0.0.0.0}" \
	--profile "${EGW_SIM_PROFILE:-solaredge}" \
	--port "${EGW_SIM_PORT:-502}" \
	--unit-id "${EGW_SIM_UNIT_ID:-1}" \
	--speed "${EGW_SIM_SPEED:-1}" "$@"
