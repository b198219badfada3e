// Package app wires btcts-consumerd: a minimal Cosmos SDK v0.54 chain with
// ibc-go v11, the 06-solomachine light client (btcts is a solo machine) and
// the x/btcts application on port "btcts". It exists so that btcts can be
// tested against real ibc-go and so that a chain team can see, in one short
// file, what adding x/btcts to their app takes.
//
// Modules: auth, bank, staking, slashing, consensus, genutil, upgrade (ibc-go's
// client keeper requires an upgrade keeper), ibc core, 06-solomachine and
// x/btcts. There is no gov module: parameter changes are authorised by one
// address (see Authority).
package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	abci "github.com/cometbft/cometbft/abci/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/gogoproto/proto"
	"github.com/spf13/cast"

	"cosmossdk.io/log/v2"

	"github.com/cosmos/cosmos-sdk/baseapp"
	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/client/grpc/cmtservice"
	nodeservice "github.com/cosmos/cosmos-sdk/client/grpc/node"
	"github.com/cosmos/cosmos-sdk/codec"
	"github.com/cosmos/cosmos-sdk/codec/address"
	"github.com/cosmos/cosmos-sdk/codec/types"
	"github.com/cosmos/cosmos-sdk/runtime"
	"github.com/cosmos/cosmos-sdk/server"
	"github.com/cosmos/cosmos-sdk/server/api"
	"github.com/cosmos/cosmos-sdk/server/config"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	"github.com/cosmos/cosmos-sdk/std"
	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/module"
	signingtypes "github.com/cosmos/cosmos-sdk/types/tx/signing"
	"github.com/cosmos/cosmos-sdk/version"
	"github.com/cosmos/cosmos-sdk/x/auth"
	authkeeper "github.com/cosmos/cosmos-sdk/x/auth/keeper"
	authtx "github.com/cosmos/cosmos-sdk/x/auth/tx"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	"github.com/cosmos/cosmos-sdk/x/bank"
	bankkeeper "github.com/cosmos/cosmos-sdk/x/bank/keeper"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	"github.com/cosmos/cosmos-sdk/x/consensus"
	consensuskeeper "github.com/cosmos/cosmos-sdk/x/consensus/keeper"
	consensustypes "github.com/cosmos/cosmos-sdk/x/consensus/types"
	"github.com/cosmos/cosmos-sdk/x/genutil"
	genutiltypes "github.com/cosmos/cosmos-sdk/x/genutil/types"
	"github.com/cosmos/cosmos-sdk/x/slashing"
	slashingkeeper "github.com/cosmos/cosmos-sdk/x/slashing/keeper"
	slashingtypes "github.com/cosmos/cosmos-sdk/x/slashing/types"
	"github.com/cosmos/cosmos-sdk/x/staking"
	stakingkeeper "github.com/cosmos/cosmos-sdk/x/staking/keeper"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"
	"github.com/cosmos/cosmos-sdk/x/tx/signing"
	"github.com/cosmos/cosmos-sdk/x/upgrade"
	upgradekeeper "github.com/cosmos/cosmos-sdk/x/upgrade/keeper"
	upgradetypes "github.com/cosmos/cosmos-sdk/x/upgrade/types"

	ibc "github.com/cosmos/ibc-go/v11/modules/core"
	porttypes "github.com/cosmos/ibc-go/v11/modules/core/05-port/types"
	ibcexported "github.com/cosmos/ibc-go/v11/modules/core/exported"
	ibckeeper "github.com/cosmos/ibc-go/v11/modules/core/keeper"
	solomachine "github.com/cosmos/ibc-go/v11/modules/light-clients/06-solomachine"

	"example.invalid/btcts/consumer/x/btcts"
	btctskeeper "example.invalid/btcts/consumer/x/btcts/keeper"
	btctstypes "example.invalid/btcts/consumer/x/btcts/types"
)

const (
	// Name is the application's name (and its binary's).
	Name = "btcts-consumerd"
	// BondDenom is the staking and fee denomination of the chain.
	BondDenom = "stake"
)

// DefaultNodeHome is the home directory used when --home is not given.
var DefaultNodeHome = defaultNodeHome()

func defaultNodeHome() string {
	dir, err := os.UserHomeDir()
	if err != nil {
		return "." + Name
	}
	return filepath.Join(dir, "."+Name)
}

// maccPerms are the module accounts and what they may do with coins.
var maccPerms = map[string][]string{
	authtypes.FeeCollectorName:     nil,
	stakingtypes.BondedPoolName:    {authtypes.Burner, authtypes.Staking},
	stakingtypes.NotBondedPoolName: {authtypes.Burner, authtypes.Staking},
}

// BlockedAddresses are the module accounts that may not receive coins by
// ordinary transfers.
func BlockedAddresses() map[string]bool {
	blocked := make(map[string]bool, len(maccPerms))
	for name := range maccPerms {
		blocked[authtypes.NewModuleAddress(name).String()] = true
	}
	return blocked
}

// App is the btcts consumer chain application.
type App struct {
	*baseapp.BaseApp

	legacyAmino       *codec.LegacyAmino
	appCodec          codec.Codec
	txConfig          client.TxConfig
	interfaceRegistry types.InterfaceRegistry
	keys              map[string]*storetypes.KVStoreKey
	authority         string

	AccountKeeper   authkeeper.AccountKeeper
	BankKeeper      bankkeeper.BaseKeeper
	StakingKeeper   *stakingkeeper.Keeper
	SlashingKeeper  slashingkeeper.Keeper
	ConsensusKeeper consensuskeeper.Keeper
	UpgradeKeeper   *upgradekeeper.Keeper
	IBCKeeper       *ibckeeper.Keeper
	BtctsKeeper     btctskeeper.Keeper

	soloMachine solomachine.AppModule

	ModuleManager      *module.Manager
	BasicModuleManager module.BasicManager
	configurator       module.Configurator
}

var _ servertypes.Application = (*App)(nil)

// New builds the application. It returns an error for a bad option (an
// invalid authority address) instead of starting a chain that cannot change
// its parameters.
func New(
	logger log.Logger,
	db dbm.DB,
	loadLatest bool,
	appOpts servertypes.AppOptions,
	baseAppOptions ...func(*baseapp.BaseApp),
) (*App, error) {
	interfaceRegistry, err := types.NewInterfaceRegistryWithOptions(types.InterfaceRegistryOptions{
		ProtoFiles: proto.HybridResolver,
		SigningOptions: signing.Options{
			AddressCodec:          address.Bech32Codec{Bech32Prefix: sdk.GetConfig().GetBech32AccountAddrPrefix()},
			ValidatorAddressCodec: address.Bech32Codec{Bech32Prefix: sdk.GetConfig().GetBech32ValidatorAddrPrefix()},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("interface registry: %w", err)
	}
	appCodec := codec.NewProtoCodec(interfaceRegistry)
	legacyAmino := codec.NewLegacyAmino()
	std.RegisterLegacyAminoCodec(legacyAmino)
	std.RegisterInterfaces(interfaceRegistry)
	// Transactions are signed with SIGN_MODE_DIRECT only (what the btcts relay
	// and the SDK's CLI use).
	txConfig := authtx.NewTxConfig(appCodec, []signingtypes.SignMode{signingtypes.SignMode_SIGN_MODE_DIRECT})

	authority, err := Authority(appOpts)
	if err != nil {
		return nil, err
	}

	bApp := baseapp.NewBaseApp(Name, logger, db, txConfig.TxDecoder(), baseAppOptions...)
	bApp.SetVersion(version.Version)
	bApp.SetInterfaceRegistry(interfaceRegistry)
	bApp.SetTxEncoder(txConfig.TxEncoder())

	keys := storetypes.NewKVStoreKeys(
		authtypes.StoreKey, banktypes.StoreKey, stakingtypes.StoreKey, slashingtypes.StoreKey,
		consensustypes.StoreKey, upgradetypes.StoreKey, ibcexported.StoreKey, btctstypes.StoreKey,
	)

	app := &App{
		BaseApp:           bApp,
		legacyAmino:       legacyAmino,
		appCodec:          appCodec,
		txConfig:          txConfig,
		interfaceRegistry: interfaceRegistry,
		keys:              keys,
		authority:         authority,
	}
	if err := app.makeKeepers(appOpts, logger); err != nil {
		return nil, err
	}
	if err := app.makeModules(); err != nil {
		return nil, err
	}

	app.MountKVStores(keys)
	app.SetInitChainer(app.InitChainer)
	app.SetPreBlocker(app.PreBlocker)
	app.SetBeginBlocker(app.BeginBlocker)
	app.SetEndBlocker(app.EndBlocker)
	anteHandler, err := NewAnteHandler(app.AccountKeeper, app.BankKeeper, app.IBCKeeper, txConfig.SignModeHandler())
	if err != nil {
		return nil, fmt.Errorf("ante handler: %w", err)
	}
	app.SetAnteHandler(anteHandler)

	if loadLatest {
		if err := app.LoadLatestVersion(); err != nil {
			return nil, fmt.Errorf("loading the latest version: %w", err)
		}
	}
	return app, nil
}

// makeKeepers builds the keepers, the IBC port router and the light client
// routes.
func (app *App) makeKeepers(appOpts servertypes.AppOptions, logger log.Logger) (err error) {
	// Keeper constructors panic on bad arguments; turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building keepers: %v", r)
		}
	}()
	cdc, keys, authority := app.appCodec, app.keys, app.authority
	addrCodec := address.NewBech32Codec(sdk.GetConfig().GetBech32AccountAddrPrefix())

	app.ConsensusKeeper = consensuskeeper.NewKeeper(cdc, runtime.NewKVStoreService(keys[consensustypes.StoreKey]), authority, runtime.EventService{})
	app.SetParamStore(app.ConsensusKeeper.ParamsStore)

	app.AccountKeeper = authkeeper.NewAccountKeeper(cdc, runtime.NewKVStoreService(keys[authtypes.StoreKey]),
		authtypes.ProtoBaseAccount, maccPerms, addrCodec, sdk.GetConfig().GetBech32AccountAddrPrefix(), authority)
	app.BankKeeper = bankkeeper.NewBaseKeeper(cdc, runtime.NewKVStoreService(keys[banktypes.StoreKey]),
		app.AccountKeeper, BlockedAddresses(), authority, logger)
	app.StakingKeeper = stakingkeeper.NewKeeper(cdc, runtime.NewKVStoreService(keys[stakingtypes.StoreKey]),
		app.AccountKeeper, app.BankKeeper, authority,
		address.NewBech32Codec(sdk.GetConfig().GetBech32ValidatorAddrPrefix()),
		address.NewBech32Codec(sdk.GetConfig().GetBech32ConsensusAddrPrefix()))
	app.SlashingKeeper = slashingkeeper.NewKeeper(cdc, app.legacyAmino,
		runtime.NewKVStoreService(keys[slashingtypes.StoreKey]), app.StakingKeeper, authority)

	skipUpgradeHeights := map[int64]bool{}
	for _, h := range cast.ToIntSlice(appOpts.Get(server.FlagUnsafeSkipUpgrades)) {
		skipUpgradeHeights[int64(h)] = true
	}
	homePath := cast.ToString(appOpts.Get(flags.FlagHome))
	app.UpgradeKeeper = upgradekeeper.NewKeeper(skipUpgradeHeights,
		runtime.NewKVStoreService(keys[upgradetypes.StoreKey]), cdc, homePath, app.BaseApp, authority)

	app.IBCKeeper = ibckeeper.NewKeeper(cdc, runtime.NewKVStoreService(keys[ibcexported.StoreKey]), app.UpgradeKeeper, authority)

	// btcts is a solo machine: the only light client this chain needs.
	storeProvider := app.IBCKeeper.ClientKeeper.GetStoreProvider()
	solo := solomachine.NewLightClientModule(cdc, storeProvider)
	app.IBCKeeper.ClientKeeper.AddRoute(solomachine.ModuleName, &solo)

	app.soloMachine = solomachine.NewAppModule(solo)

	// x/btcts on its port; it is the only IBC application of this chain. It
	// also holds every unbonding until a k-deep timestamp of this chain (or
	// max_hold) releases it: it takes the staking keeper, and its hooks are
	// the staking module's below.
	app.BtctsKeeper = btctskeeper.NewKeeper(cdc, runtime.NewKVStoreService(keys[btctstypes.StoreKey]), authority,
		app.StakingKeeper)
	router := porttypes.NewRouter()
	router.AddRoute(btctstypes.PortID, btcts.NewIBCModule(app.BtctsKeeper))
	app.IBCKeeper.SetRouter(router)

	app.StakingKeeper.SetHooks(stakingtypes.NewMultiStakingHooks(app.SlashingKeeper.Hooks(), app.BtctsKeeper.Hooks()))
	return nil
}

// makeModules builds the module manager and sets the order of its hooks.
func (app *App) makeModules() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building the module manager: %v", r)
		}
	}()
	cdc := app.appCodec
	app.ModuleManager = module.NewManager(
		genutil.NewAppModule(app.AccountKeeper, app.StakingKeeper, app, app.txConfig),
		auth.NewAppModule(cdc, app.AccountKeeper, nil, nil),
		bank.NewAppModule(cdc, app.BankKeeper, app.AccountKeeper, nil),
		staking.NewAppModule(cdc, app.StakingKeeper, app.AccountKeeper, app.BankKeeper, nil),
		slashing.NewAppModule(cdc, app.SlashingKeeper, app.AccountKeeper, app.BankKeeper, app.StakingKeeper, nil, app.interfaceRegistry),
		consensus.NewAppModule(cdc, app.ConsensusKeeper),
		upgrade.NewAppModule(app.UpgradeKeeper, app.AccountKeeper.AddressCodec()),
		ibc.NewAppModule(app.IBCKeeper),
		app.soloMachine,
		btcts.NewAppModule(cdc, app.BtctsKeeper),
	)
	app.BasicModuleManager = module.NewBasicManagerFromManager(app.ModuleManager, map[string]module.AppModuleBasic{
		genutiltypes.ModuleName: genutil.NewAppModuleBasic(genutiltypes.DefaultMessageValidator),
	})
	app.BasicModuleManager.RegisterLegacyAminoCodec(app.legacyAmino)
	app.BasicModuleManager.RegisterInterfaces(app.interfaceRegistry)

	app.ModuleManager.SetOrderPreBlockers(upgradetypes.ModuleName, authtypes.ModuleName)
	app.ModuleManager.SetOrderBeginBlockers(
		slashingtypes.ModuleName, stakingtypes.ModuleName, ibcexported.ModuleName, genutiltypes.ModuleName,
		btctstypes.ModuleName,
	)
	// Since SDK v0.54 bank's EndBlock must come first. x/btcts after staking:
	// it releases holds, including those of unbondings started in this block.
	app.ModuleManager.SetOrderEndBlockers(
		banktypes.ModuleName, stakingtypes.ModuleName, ibcexported.ModuleName, genutiltypes.ModuleName,
		btctstypes.ModuleName,
	)
	// genutil after staking (its gentxs bond tokens) and auth (it reads auth's params).
	genesisOrder := []string{
		consensustypes.ModuleName, authtypes.ModuleName, banktypes.ModuleName, stakingtypes.ModuleName,
		slashingtypes.ModuleName, ibcexported.ModuleName, solomachine.ModuleName, btctstypes.ModuleName,
		genutiltypes.ModuleName, upgradetypes.ModuleName,
	}
	app.ModuleManager.SetOrderInitGenesis(genesisOrder...)
	app.ModuleManager.SetOrderExportGenesis(genesisOrder...)

	app.configurator = module.NewConfigurator(cdc, app.MsgServiceRouter(), app.GRPCQueryRouter())
	if err := app.ModuleManager.RegisterServices(app.configurator); err != nil {
		return fmt.Errorf("registering module services: %w", err)
	}
	return nil
}

// PreBlocker runs the modules' pre-blockers (upgrade, auth).
func (app *App) PreBlocker(ctx sdk.Context, _ *abci.RequestFinalizeBlock) (*sdk.ResponsePreBlock, error) {
	return app.ModuleManager.PreBlock(ctx)
}

// BeginBlocker runs the modules' begin-blockers.
func (app *App) BeginBlocker(ctx sdk.Context) (sdk.BeginBlock, error) {
	return app.ModuleManager.BeginBlock(ctx)
}

// EndBlocker runs the modules' end-blockers.
func (app *App) EndBlocker(ctx sdk.Context) (sdk.EndBlock, error) {
	return app.ModuleManager.EndBlock(ctx)
}

// InitChainer initialises every module from the genesis app state.
func (app *App) InitChainer(ctx sdk.Context, req *abci.RequestInitChain) (*abci.ResponseInitChain, error) {
	var state map[string]json.RawMessage
	if err := json.Unmarshal(req.AppStateBytes, &state); err != nil {
		return nil, fmt.Errorf("decoding the genesis app state: %w", err)
	}
	if err := app.UpgradeKeeper.SetModuleVersionMap(ctx, app.ModuleManager.GetVersionMap()); err != nil {
		return nil, fmt.Errorf("setting module versions: %w", err)
	}
	return app.ModuleManager.InitGenesis(ctx, app.appCodec, state)
}

// LoadHeight loads the state at a height.
func (app *App) LoadHeight(height int64) error { return app.LoadVersion(height) }

// AppCodec is the app's protobuf codec.
func (app *App) AppCodec() codec.Codec { return app.appCodec }

// LegacyAmino is the app's amino codec (genesis transactions and CLI only).
func (app *App) LegacyAmino() *codec.LegacyAmino { return app.legacyAmino }

// InterfaceRegistry is the app's interface registry.
func (app *App) InterfaceRegistry() types.InterfaceRegistry { return app.interfaceRegistry }

// TxConfig is the app's transaction configuration (SIGN_MODE_DIRECT).
func (app *App) TxConfig() client.TxConfig { return app.txConfig }

// AuthorityAddress is the address that may change module parameters.
func (app *App) AuthorityAddress() string { return app.authority }

// DefaultGenesis is every module's default genesis state.
func (app *App) DefaultGenesis() map[string]json.RawMessage {
	return app.BasicModuleManager.DefaultGenesis(app.appCodec)
}

// RegisterAPIRoutes registers the gRPC-gateway routes on the REST API server
// (off by default).
func (app *App) RegisterAPIRoutes(apiSvr *api.Server, _ config.APIConfig) {
	clientCtx := apiSvr.ClientCtx
	authtx.RegisterGRPCGatewayRoutes(clientCtx, apiSvr.GRPCGatewayRouter)
	cmtservice.RegisterGRPCGatewayRoutes(clientCtx, apiSvr.GRPCGatewayRouter)
	nodeservice.RegisterGRPCGatewayRoutes(clientCtx, apiSvr.GRPCGatewayRouter)
	app.BasicModuleManager.RegisterGRPCGatewayRoutes(clientCtx, apiSvr.GRPCGatewayRouter)
}

// RegisterTxService registers cosmos.tx.v1beta1.Service (BroadcastTx, GetTx,
// Simulate).
func (app *App) RegisterTxService(clientCtx client.Context) {
	authtx.RegisterTxService(app.GRPCQueryRouter(), clientCtx, app.Simulate, app.interfaceRegistry)
}

// RegisterTendermintService registers cosmos.base.tendermint.v1beta1.Service
// (GetLatestBlock, GetBlockByHeight, …).
func (app *App) RegisterTendermintService(clientCtx client.Context) {
	cmtApp := server.NewCometABCIWrapper(app)
	cmtservice.RegisterTendermintService(clientCtx, app.GRPCQueryRouter(), app.interfaceRegistry, cmtApp.Query)
}

// RegisterNodeService registers cosmos.base.node.v1beta1.Service.
func (app *App) RegisterNodeService(clientCtx client.Context, cfg config.Config) {
	nodeservice.RegisterNodeService(clientCtx, app.GRPCQueryRouter(), cfg, func() int64 {
		return app.CommitMultiStore().EarliestVersion()
	})
}
