module example.invalid/btcts/consumer

go 1.25.9

require github.com/cosmos/gogoproto v1.7.2

require (
	github.com/google/go-cmp v0.7.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
