// Package btcts is the Cosmos SDK module of a btcts consumer chain: an IBC
// application on port "btcts" that verifies each packet's Bitcoin evidence
// (example.invalid/btcts/consumer/verify) from the Bitcoin headers it
// trusts, and keeps the verified timestamps of its source chains
// (docs/ibc.md). It also holds the chain's unbondings until a k-deep
// timestamp of the chain's own history (or max_hold) releases them
// (docs/fast-unbonding.md). module.go wires the keeper into the module
// manager; ibc_module.go holds the IBC callbacks.
package btcts

import (
	"context"
	"encoding/json"
	"fmt"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/runtime"
	"github.com/spf13/cobra"

	"cosmossdk.io/core/appmodule"

	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/module"

	"example.invalid/btcts/consumer/x/btcts/client/cli"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

// ConsensusVersion is the version of the module's state layout.
const ConsensusVersion = 1

var (
	_ module.AppModule           = AppModule{}
	_ module.HasGenesis          = AppModule{}
	_ module.HasServices         = AppModule{}
	_ module.HasConsensusVersion = AppModule{}
	_ appmodule.AppModule        = AppModule{}
	_ appmodule.HasBeginBlocker  = AppModule{}
	_ appmodule.HasEndBlocker    = AppModule{}
)

// AppModule is the x/btcts module for the module manager.
type AppModule struct {
	cdc    codec.Codec
	keeper keeper.Keeper
}

// NewAppModule builds the module around its keeper.
func NewAppModule(cdc codec.Codec, k keeper.Keeper) AppModule {
	return AppModule{cdc: cdc, keeper: k}
}

// Name is the module's name.
func (AppModule) Name() string { return types.ModuleName }

// IsOnePerModuleType implements depinject.OnePerModuleType.
func (AppModule) IsOnePerModuleType() {}

// IsAppModule implements appmodule.AppModule.
func (AppModule) IsAppModule() {}

// ConsensusVersion implements module.HasConsensusVersion.
func (AppModule) ConsensusVersion() uint64 { return ConsensusVersion }

// RegisterLegacyAminoCodec registers MsgUpdateParams for amino JSON.
func (AppModule) RegisterLegacyAminoCodec(cdc *codec.LegacyAmino) {
	types.RegisterLegacyAminoCodec(cdc)
}

// RegisterInterfaces registers the module's messages.
func (AppModule) RegisterInterfaces(registry codectypes.InterfaceRegistry) {
	types.RegisterInterfaces(registry)
}

// RegisterGRPCGatewayRoutes registers nothing: the module's queries are
// served over gRPC (and its CLI), not over the REST gateway.
func (AppModule) RegisterGRPCGatewayRoutes(client.Context, *gwruntime.ServeMux) {}

// RegisterServices registers the Msg and Query services.
func (am AppModule) RegisterServices(cfg module.Configurator) {
	types.RegisterMsgServer(cfg.MsgServer(), keeper.NewMsgServer(am.keeper))
	types.RegisterQueryServer(cfg.QueryServer(), keeper.NewQueryServer(am.keeper))
}

// GetQueryCmd returns `query btcts ...`.
func (AppModule) GetQueryCmd() *cobra.Command { return cli.GetQueryCmd() }

// DefaultGenesis is incomplete on purpose (no source chains, no trusted
// header): ValidateGenesis says what to add.
func (am AppModule) DefaultGenesis(cdc codec.JSONCodec) json.RawMessage {
	return cdc.MustMarshalJSON(types.DefaultGenesis())
}

// ValidateGenesis checks the module's genesis JSON.
func (AppModule) ValidateGenesis(cdc codec.JSONCodec, _ client.TxEncodingConfig, bz json.RawMessage) error {
	var gs types.GenesisState
	if err := cdc.UnmarshalJSON(bz, &gs); err != nil {
		return fmt.Errorf("%s genesis does not decode: %w", types.ModuleName, err)
	}
	if err := gs.Validate(); err != nil {
		return fmt.Errorf("%s genesis: %w", types.ModuleName, err)
	}
	return nil
}

// InitGenesis stores the genesis state. The SDK's interface has no error
// return: an invalid genesis stops the chain at its start.
func (am AppModule) InitGenesis(ctx sdk.Context, cdc codec.JSONCodec, bz json.RawMessage) {
	var gs types.GenesisState
	cdc.MustUnmarshalJSON(bz, &gs)
	if err := am.keeper.InitGenesis(ctx, gs); err != nil {
		panic(fmt.Sprintf("%s genesis: %v", types.ModuleName, err))
	}
}

// BeginBlock stores this chain's own block hash and prunes old ones.
func (am AppModule) BeginBlock(ctx context.Context) error {
	return am.keeper.BeginBlock(sdk.UnwrapSDKContext(ctx))
}

// EndBlock releases the holds covered by this chain's own timestamp and
// those older than max_hold.
func (am AppModule) EndBlock(ctx context.Context) error {
	return am.keeper.EndBlock(sdk.UnwrapSDKContext(ctx))
}

// ExportGenesis returns the module's state as genesis JSON.
func (am AppModule) ExportGenesis(ctx sdk.Context, cdc codec.JSONCodec) json.RawMessage {
	gs, err := am.keeper.ExportGenesis(ctx)
	if err != nil {
		panic(fmt.Sprintf("%s export genesis: %v", types.ModuleName, err))
	}
	return cdc.MustMarshalJSON(gs)
}
