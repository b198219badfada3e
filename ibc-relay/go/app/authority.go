package app

import (
	"fmt"
	"strings"

	"github.com/spf13/cast"

	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	sdk "github.com/cosmos/cosmos-sdk/types"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
)

// FlagAuthority is the app option (app.toml `[btcts] authority`, or the start
// flag `--btcts.authority`) naming the address that may change module
// parameters (MsgUpdateParams of x/btcts, bank, staking, …).
const FlagAuthority = "btcts.authority"

// DefaultAuthority is the authority when none is configured: the address of
// the module account "gov", as chains conventionally use. This chain has no
// gov module, so by default nobody holds it and parameters only change
// through genesis.
func DefaultAuthority() string {
	return authtypes.NewModuleAddress("gov").String()
}

// Authority is the configured authority address, or DefaultAuthority.
//
// It is node configuration that decides which transactions succeed, so every
// validator must configure the same address. A chain-wide alternative is the
// SDK's consensus parameter `authority` (genesis `consensus.params.authority`),
// which takes precedence for every module that checks it with
// sdk.ValidateAuthority.
func Authority(opts servertypes.AppOptions) (string, error) {
	raw := strings.TrimSpace(cast.ToString(opts.Get(FlagAuthority)))
	if raw == "" {
		return DefaultAuthority(), nil
	}
	if _, err := sdk.AccAddressFromBech32(raw); err != nil {
		return "", fmt.Errorf("%s %q: %w", FlagAuthority, raw, err)
	}
	return raw, nil
}
