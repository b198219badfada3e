#!/usr/bin/env bash
# Regenerates the Go protobuf types of this module from ../proto (the same
# .proto files the Rust crates follow). The generated *.pb.go files are
# committed, so building and testing never needs this; run it after editing
# a .proto file. Needs protoc (Debian: protobuf-compiler) and
# protoc-gen-gocosmos (installed here from the Go module proxy).
set -euo pipefail
cd "$(dirname "$0")/.."

GOGOPROTO_VERSION=v1.7.2
if ! command -v protoc >/dev/null 2>&1; then
  echo "protocgen: installing protoc (Debian protobuf-compiler)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi
GOBIN=$(go env GOPATH)/bin
if [ ! -x "$GOBIN/protoc-gen-gocosmos" ]; then
  go install "github.com/cosmos/gogoproto/protoc-gen-gocosmos@${GOGOPROTO_VERSION}"
fi

# Import roots: gogoproto, cosmos_proto and the Cosmos SDK's own protos, at
# the versions go.mod pins.
dir() {
  local version
  version=$(go list -m -f '{{.Version}}' "$1")
  go mod download -json "$1@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}
GOGO=$(dir github.com/cosmos/gogoproto)
COSMOS_PROTO=$(dir github.com/cosmos/cosmos-proto)
SDK=$(dir github.com/cosmos/cosmos-sdk)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
find ../proto -name '*.proto' -print0 | sort -z | while IFS= read -r -d '' f; do
  PATH="$GOBIN:$PATH" protoc \
    -I ../proto -I "$GOGO" -I "$COSMOS_PROTO/proto" -I "$SDK/proto" \
    -I "$(dirname "$(command -v protoc)")/../include" \
    --gocosmos_out="plugins=grpc,Mgoogle/protobuf/any.proto=github.com/cosmos/gogoproto/types/any:$out" \
    "$f"
done
# Files land under their go_package path; copy those of this module in place.
module=$(go list -m)
cp -r "$out/$module/." .
