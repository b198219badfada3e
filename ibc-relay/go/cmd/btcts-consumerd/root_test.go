package main

import (
	"strings"
	"testing"
)

func TestRootCommands(t *testing.T) {
	root, err := NewRootCmd()
	if err != nil {
		t.Fatalf("NewRootCmd: %v", err)
	}
	tests := []struct {
		path []string
	}{
		{[]string{"init"}},
		{[]string{"keys", "add"}},
		{[]string{"genesis", "add-genesis-account"}},
		{[]string{"genesis", "gentx"}},
		{[]string{"genesis", "collect-gentxs"}},
		{[]string{"start"}},
		{[]string{"status"}},
		{[]string{"query", "wait-tx"}},
		{[]string{"query", "bank", "balance"}},
		{[]string{"query", "auth", "account"}},
		{[]string{"query", "ibc"}},
		{[]string{"query", "btcts", "params"}},
		{[]string{"query", "btcts", "trusted-header"}},
		{[]string{"tx", "bank", "send"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.path, " "), func(t *testing.T) {
			cmd, rest, err := root.Find(tt.path)
			if err != nil || len(rest) != 0 || cmd.Name() != tt.path[len(tt.path)-1] {
				t.Fatalf("no command %q (found %q, rest %v, err %v)", tt.path, cmd.CommandPath(), rest, err)
			}
		})
	}
}

func TestStartHasTheAuthorityFlag(t *testing.T) {
	root, err := NewRootCmd()
	if err != nil {
		t.Fatalf("NewRootCmd: %v", err)
	}
	start, _, err := root.Find([]string{"start"})
	if err != nil {
		t.Fatal(err)
	}
	if start.Flags().Lookup("btcts.authority") == nil {
		t.Fatal("start has no --btcts.authority flag")
	}
}

func TestAppConfigTemplate(t *testing.T) {
	template, cfg := initAppConfig()
	if !strings.Contains(template, "[btcts]") || !strings.Contains(template, "{{ .Btcts.Authority }}") {
		t.Fatal("app.toml template lacks the [btcts] authority")
	}
	if got := cfg.(appConfig).MinGasPrices; got != "0.0025stake" {
		t.Fatalf("default minimum-gas-prices = %q", got)
	}
}
