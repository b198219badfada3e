// Package cli holds `query btcts ...`: one command per gRPC query of the
// module, over the generated query client.
package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cosmos/gogoproto/proto"

	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/flags"
	"github.com/cosmos/cosmos-sdk/types/query"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// GetQueryCmd returns the module's query commands.
func GetQueryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:                        types.ModuleName,
		Short:                      "Query the btcts module: trusted Bitcoin headers, verified timestamps, held unbondings",
		DisableFlagParsing:         true,
		SuggestionsMinimumDistance: 2,
		RunE:                       client.ValidateCmd,
	}
	cmd.AddCommand(
		queryCmd("params", "The module's parameters", cobra.NoArgs,
			func(c *cobra.Command, q types.QueryClient, _ []string) (printable, error) {
				return q.Params(c.Context(), &types.QueryParamsRequest{})
			}),
		queryCmd("trusted-header", "The trusted tip: the highest Bitcoin header the module knows", cobra.NoArgs,
			func(c *cobra.Command, q types.QueryClient, _ []string) (printable, error) {
				return q.TrustedHeader(c.Context(), &types.QueryTrustedHeaderRequest{})
			}),
		queryCmd("known-header [bitcoin-height]", "The known Bitcoin header at a height", cobra.ExactArgs(1),
			func(c *cobra.Command, q types.QueryClient, args []string) (printable, error) {
				height, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil {
					return nil, fmt.Errorf("bitcoin height %q: %w", args[0], err)
				}
				return q.KnownHeader(c.Context(), &types.QueryKnownHeaderRequest{Height: uint32(height)})
			}),
		queryCmd("latest-timestamp [chain-id]", "A source chain's highest verified timestamp", cobra.ExactArgs(1),
			func(c *cobra.Command, q types.QueryClient, args []string) (printable, error) {
				return q.LatestTimestamp(c.Context(), &types.QueryLatestTimestampRequest{ChainId: args[0]})
			}),
		queryCmd("timestamp [chain-id] [height]", "The verified timestamp of a source chain's height", cobra.ExactArgs(2),
			func(c *cobra.Command, q types.QueryClient, args []string) (printable, error) {
				height, err := strconv.ParseUint(args[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("height %q: %w", args[1], err)
				}
				return q.Timestamp(c.Context(), &types.QueryTimestampRequest{ChainId: args[0], Height: height})
			}),
		queryCmd("latest-timestamps", "Every source chain's latest verified timestamp", cobra.NoArgs,
			func(c *cobra.Command, q types.QueryClient, _ []string) (printable, error) {
				return q.LatestTimestamps(c.Context(), &types.QueryLatestTimestampsRequest{})
			}),
		queryCmd("conflicts [chain-id]", "A source chain's conflicting timestamps", cobra.ExactArgs(1),
			func(c *cobra.Command, q types.QueryClient, args []string) (printable, error) {
				return q.Conflicts(c.Context(), &types.QueryConflictsRequest{ChainId: args[0]})
			}),
		pagedQueryCmd("holds", "Unbondings on hold, and the timestamp of this chain that releases them",
			func(c *cobra.Command, q types.QueryClient, page *query.PageRequest) (printable, error) {
				return q.Holds(c.Context(), &types.QueryHoldsRequest{Pagination: page})
			}),
		pagedQueryCmd("forks", "Timestamps of this chain whose block hash is not the chain's own",
			func(c *cobra.Command, q types.QueryClient, page *query.PageRequest) (printable, error) {
				return q.Forks(c.Context(), &types.QueryForksRequest{Pagination: page})
			}),
		queryCmd("own-hash [height]", "This chain's own block hash at a height, as x/btcts keeps it", cobra.ExactArgs(1),
			func(c *cobra.Command, q types.QueryClient, args []string) (printable, error) {
				height, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("height %q: %w", args[0], err)
				}
				return q.OwnHash(c.Context(), &types.QueryOwnHashRequest{Height: height})
			}),
	)
	return cmd
}

// printable is a query response.
type printable = proto.Message

func queryCmd(
	use, short string, args cobra.PositionalArgs,
	run func(*cobra.Command, types.QueryClient, []string) (printable, error),
) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			clientCtx, err := client.GetClientQueryContext(cmd)
			if err != nil {
				return err
			}
			res, err := run(cmd, types.NewQueryClient(clientCtx), args)
			if err != nil {
				return err
			}
			return clientCtx.PrintProto(res)
		},
	}
	flags.AddQueryFlagsToCmd(cmd)
	return cmd
}

// pagedQueryCmd is a query without arguments and with pagination flags.
func pagedQueryCmd(
	use, short string,
	run func(*cobra.Command, types.QueryClient, *query.PageRequest) (printable, error),
) *cobra.Command {
	cmd := queryCmd(use, short, cobra.NoArgs, func(c *cobra.Command, q types.QueryClient, _ []string) (printable, error) {
		page, err := client.ReadPageRequest(c.Flags())
		if err != nil {
			return nil, err
		}
		return run(c, q, page)
	})
	flags.AddPaginationFlagsToCmd(cmd, use)
	return cmd
}
