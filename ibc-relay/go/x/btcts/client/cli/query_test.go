package cli_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"example.invalid/btcts/consumer/x/btcts/client/cli"
)

func TestQueryCommands(t *testing.T) {
	root := cli.GetQueryCmd()
	require.Equal(t, "btcts", root.Name())
	tests := []struct {
		name string
		ok   [][]string
		bad  [][]string
	}{
		{"params", [][]string{{}}, [][]string{{"x"}}},
		{"trusted-header", [][]string{{}}, [][]string{{"1"}}},
		{"known-header", [][]string{{"100"}}, [][]string{{}, {"1", "2"}}},
		{"latest-timestamp", [][]string{{"cosmoshub-4"}}, [][]string{{}}},
		{"timestamp", [][]string{{"cosmoshub-4", "7"}}, [][]string{{"cosmoshub-4"}}},
		{"latest-timestamps", [][]string{{}}, [][]string{{"x"}}},
		{"conflicts", [][]string{{"cosmoshub-4"}}, [][]string{{}}},
		{"holds", [][]string{{}}, [][]string{{"x"}}},
		{"forks", [][]string{{}}, [][]string{{"1"}}},
		{"own-hash", [][]string{{"12"}}, [][]string{{}, {"1", "2"}}},
	}
	var names []string
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	require.Len(t, names, len(tests))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, err := root.Find([]string{tc.name})
			require.NoError(t, err)
			require.Equal(t, tc.name, cmd.Name())
			require.NotNil(t, cmd.Flags().Lookup("node"), "query flags")
			if tc.name == "holds" || tc.name == "forks" {
				require.NotNil(t, cmd.Flags().Lookup("limit"), "pagination flags")
			}
			for _, args := range tc.ok {
				require.NoError(t, cmd.Args(cmd, args), "%v", args)
			}
			for _, args := range tc.bad {
				require.Error(t, cmd.Args(cmd, args), "%v", args)
			}
		})
	}
}
