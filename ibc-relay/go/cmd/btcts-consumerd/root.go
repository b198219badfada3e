package main

import (
	"fmt"
	"os"

	cmtcfg "github.com/cometbft/cometbft/config"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/spf13/cobra"

	"cosmossdk.io/client/v2/autocli"
	"cosmossdk.io/core/appmodule"
	"cosmossdk.io/log/v2"

	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/config"
	"github.com/cosmos/cosmos-sdk/client/keys"
	"github.com/cosmos/cosmos-sdk/client/rpc"
	addresscodec "github.com/cosmos/cosmos-sdk/codec/address"
	runtimeservices "github.com/cosmos/cosmos-sdk/runtime/services"
	"github.com/cosmos/cosmos-sdk/server"
	serverconfig "github.com/cosmos/cosmos-sdk/server/config"
	servertypes "github.com/cosmos/cosmos-sdk/server/types"
	sdk "github.com/cosmos/cosmos-sdk/types"
	authcmd "github.com/cosmos/cosmos-sdk/x/auth/client/cli"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	genutilcli "github.com/cosmos/cosmos-sdk/x/genutil/client/cli"

	"example.invalid/btcts/consumer/app"
)

// NewRootCmd is the btcts-consumerd command: init, keys, genesis, start,
// status, query and tx, plus every module's queries and transactions (autocli).
func NewRootCmd() (*cobra.Command, error) {
	// A throwaway app, for its codecs and module list.
	temp, err := app.New(log.NewNopLogger(), dbm.NewMemDB(), false, emptyOptions{})
	if err != nil {
		return nil, fmt.Errorf("building the app: %w", err)
	}
	clientCtx := client.Context{}.
		WithCodec(temp.AppCodec()).
		WithInterfaceRegistry(temp.InterfaceRegistry()).
		WithTxConfig(temp.TxConfig()).
		WithLegacyAmino(temp.LegacyAmino()).
		WithInput(os.Stdin).
		WithAccountRetriever(authtypes.AccountRetriever{}).
		WithHomeDir(app.DefaultNodeHome).
		WithViper("")

	root := &cobra.Command{
		Use:           app.Name,
		Short:         "A consumer chain of btcts timestamps (Cosmos SDK, ibc-go, 06-solomachine, x/btcts)",
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.OutOrStdout())
			cmd.SetErr(cmd.ErrOrStderr())
			ctx := clientCtx.WithCmdContext(cmd.Context())
			ctx, err := client.ReadPersistentCommandFlags(ctx, cmd.Flags())
			if err != nil {
				return err
			}
			ctx, err = config.ReadFromClientConfig(ctx)
			if err != nil {
				return err
			}
			if err := client.SetCmdClientContextHandler(ctx, cmd); err != nil {
				return err
			}
			template, appConfig := initAppConfig()
			return server.InterceptConfigsPreRunHandler(cmd, template, appConfig, cmtcfg.DefaultConfig())
		},
	}

	basics := temp.BasicModuleManager
	root.AddCommand(
		genutilcli.InitCmd(basics, app.DefaultNodeHome),
		genutilcli.Commands(temp.TxConfig(), basics, app.DefaultNodeHome),
		server.StatusCommand(),
		queryCommand(),
		txCommand(),
		keys.Commands(),
	)
	server.AddCommands(root, app.DefaultNodeHome, newApp, exportApp, addStartFlags)

	autoCli, err := autoCliOptions(temp, clientCtx)
	if err != nil {
		return nil, err
	}
	if err := autoCli.EnhanceRootCommand(root); err != nil {
		return nil, fmt.Errorf("module commands: %w", err)
	}
	return root, nil
}

// autoCliOptions makes every module's query and tx commands from its gRPC
// services.
func autoCliOptions(a *app.App, clientCtx client.Context) (autocli.AppOptions, error) {
	modules := make(map[string]appmodule.AppModule)
	for name, m := range a.ModuleManager.Modules {
		if am, ok := m.(appmodule.AppModule); ok {
			modules[name] = am
		}
	}
	clientCtx, err := config.ReadDefaultValuesFromDefaultClientConfig(clientCtx)
	if err != nil {
		return autocli.AppOptions{}, fmt.Errorf("client config: %w", err)
	}
	cfg := sdk.GetConfig()
	return autocli.AppOptions{
		Modules:               modules,
		ModuleOptions:         runtimeservices.ExtractAutoCLIOptions(a.ModuleManager.Modules),
		AddressCodec:          addresscodec.NewBech32Codec(cfg.GetBech32AccountAddrPrefix()),
		ValidatorAddressCodec: addresscodec.NewBech32Codec(cfg.GetBech32ValidatorAddrPrefix()),
		ConsensusAddressCodec: addresscodec.NewBech32Codec(cfg.GetBech32ConsensusAddrPrefix()),
		ClientCtx:             clientCtx,
	}, nil
}

func queryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "query",
		Aliases:                    []string{"q"},
		Short:                      "Querying subcommands",
		SuggestionsMinimumDistance: 2,
		RunE:                       client.ValidateCmd,
	}
	cmd.AddCommand(
		rpc.QueryEventForTxCmd(),
		rpc.ValidatorCommand(),
		server.QueryBlockCmd(),
		server.QueryBlocksCmd(),
		server.QueryBlockResultsCmd(),
		authcmd.QueryTxsByEventsCmd(),
		authcmd.QueryTxCmd(),
	)
	return cmd
}

func txCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        "tx",
		Short:                      "Transactions subcommands",
		SuggestionsMinimumDistance: 2,
		RunE:                       client.ValidateCmd,
	}
	cmd.AddCommand(
		authcmd.GetSignCommand(),
		authcmd.GetBroadcastCommand(),
		authcmd.GetEncodeCommand(),
		authcmd.GetDecodeCommand(),
		authcmd.GetSimulateCmd(),
	)
	return cmd
}

// btctsConfig is the `[btcts]` section of app.toml.
type btctsConfig struct {
	// Authority is the address allowed to change module parameters.
	Authority string `mapstructure:"authority"`
}

type appConfig struct {
	serverconfig.Config `mapstructure:",squash"`
	Btcts               btctsConfig `mapstructure:"btcts"`
}

// initAppConfig is app.toml's template and defaults: the SDK's, a minimum gas
// price in the bond denomination, and the `[btcts]` section.
func initAppConfig() (string, any) {
	srv := serverconfig.DefaultConfig()
	srv.MinGasPrices = "0.0025" + app.BondDenom
	cfg := appConfig{Config: *srv, Btcts: btctsConfig{Authority: ""}}
	template := serverconfig.DefaultConfigTemplate + `
###############################################################################
###                                 btcts                                   ###
###############################################################################

[btcts]

# The address allowed to change module parameters (MsgUpdateParams). Empty:
# the "gov" module account's address, which nobody holds on this chain. Every
# validator must configure the same value.
authority = "{{ .Btcts.Authority }}"
`
	return template, cfg
}

func addStartFlags(cmd *cobra.Command) {
	cmd.Flags().String(app.FlagAuthority, "", "address allowed to change module parameters (default: the gov module account)")
}

func newApp(logger log.Logger, db dbm.DB, opts servertypes.AppOptions) servertypes.Application {
	a, err := app.New(logger, db, true, opts, server.DefaultBaseappOptions(opts)...)
	if err != nil {
		// The server's AppCreator has no error return; fail start-up loudly.
		panic(fmt.Errorf("starting %s: %w", app.Name, err))
	}
	return a
}

func exportApp(
	logger log.Logger,
	db dbm.DB,
	height int64,
	forZeroHeight bool,
	jailAllowedAddrs []string,
	opts servertypes.AppOptions,
	modulesToExport []string,
) (servertypes.ExportedApp, error) {
	a, err := app.New(logger, db, height == -1, opts)
	if err != nil {
		return servertypes.ExportedApp{}, err
	}
	if height != -1 {
		if err := a.LoadHeight(height); err != nil {
			return servertypes.ExportedApp{}, fmt.Errorf("loading height %d: %w", height, err)
		}
	}
	return a.ExportAppStateAndValidators(forZeroHeight, jailAllowedAddrs, modulesToExport)
}

// emptyOptions are app options with nothing set.
type emptyOptions struct{}

func (emptyOptions) Get(string) any { return nil }
