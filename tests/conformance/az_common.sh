# Sourced by the azure-cli judges: step/expect, and azure-cli pointed at `rescue emulator serve`
# as a user points it at another cloud. Only this block differs from real Azure: a registered
# cloud whose resource manager is the emulator (azure-cli reads the rest from its
# /metadata/endpoints), a config dir of its own, the emulator's CA, and MSAL's instance
# discovery off (it would ask login.microsoftonline.com).
AZ=${AZ:-az}
: "${RESCUE_EMULATOR_URL:?eval the export lines of rescue emulator serve}"
step() { printf '== %s\n' "$*"; }
expect() { # expect WHAT EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then printf 'FAILED: %s: expected %q, got %q\n' "$1" "$2" "$3" >&2; exit 1; fi
  printf 'ok: %s\n' "$1"
}
await_value() { # await_value EXPECTED COMMAND...: reruns COMMAND (60 tries, 1 s apart) until it
  # prints EXPECTED, as a user waits for a guest to boot; prints what it printed last.
  local want=$1 got=; shift
  for _ in $(seq 60); do
    got=$("$@")
    [ "$got" = "$want" ] && break
    sleep 1
  done
  printf '%s' "$got"
}

export AZURE_CONFIG_DIR=${AZURE_CONFIG_DIR:-$(mktemp -d)}
export REQUESTS_CA_BUNDLE=$RESCUE_EMULATOR_CA
export AZURE_CORE_COLLECT_TELEMETRY=false
"$AZ" config set core.instance_discovery=false --only-show-errors
"$AZ" cloud register --name RescueEmulator --endpoint-resource-manager "$RESCUE_EMULATOR_URL/" --only-show-errors
"$AZ" cloud set --name RescueEmulator --only-show-errors
