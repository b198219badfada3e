package app

import (
	"errors"

	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/x/auth/ante"
	authkeeper "github.com/cosmos/cosmos-sdk/x/auth/keeper"
	bankkeeper "github.com/cosmos/cosmos-sdk/x/bank/keeper"
	txsigning "github.com/cosmos/cosmos-sdk/x/tx/signing"

	ibcante "github.com/cosmos/ibc-go/v11/modules/core/ante"
	ibckeeper "github.com/cosmos/ibc-go/v11/modules/core/keeper"
)

// NewAnteHandler is the SDK's standard ante handler (fees checked against the
// node's minimum-gas-prices in CheckTx and deducted, signatures verified,
// sequences incremented) followed by ibc-go's redundant-relay check, which
// refuses in CheckTx a transaction whose packet messages were all received
// already — as chains running ibc-go usually do.
func NewAnteHandler(
	ak authkeeper.AccountKeeper,
	bk bankkeeper.Keeper,
	ibcKeeper *ibckeeper.Keeper,
	signModes *txsigning.HandlerMap,
) (sdk.AnteHandler, error) {
	if ibcKeeper == nil {
		return nil, errors.New("ibc keeper is required for the ante handler")
	}
	standard, err := ante.NewAnteHandler(ante.HandlerOptions{
		AccountKeeper:   ak,
		BankKeeper:      bk,
		SignModeHandler: signModes,
		SigGasConsumer:  ante.DefaultSigVerificationGasConsumer,
	})
	if err != nil {
		return nil, err
	}
	return sdk.ChainAnteDecorators(
		standardDecorator{standard},
		ibcante.NewRedundantRelayDecorator(ibcKeeper),
	), nil
}

// standardDecorator runs a whole ante handler as one decorator of a chain.
type standardDecorator struct{ handler sdk.AnteHandler }

func (d standardDecorator) AnteHandle(ctx sdk.Context, tx sdk.Tx, simulate bool, next sdk.AnteHandler) (sdk.Context, error) {
	ctx, err := d.handler(ctx, tx, simulate)
	if err != nil {
		return ctx, err
	}
	return next(ctx, tx, simulate)
}
