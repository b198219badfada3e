// Command btcts-consumerd runs a minimal Cosmos SDK chain with ibc-go, the
// 06-solomachine light client and x/btcts: a consumer chain of btcts timestamps
// for tests, demos and as an example of the wiring.
package main

import (
	"fmt"
	"os"

	svrcmd "github.com/cosmos/cosmos-sdk/server/cmd"

	"example.invalid/btcts/consumer/app"
)

func main() {
	root, err := NewRootCmd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := svrcmd.Execute(root, "", app.DefaultNodeHome); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
