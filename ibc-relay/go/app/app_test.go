package app

import (
	"strings"
	"testing"

	dbm "github.com/cosmos/cosmos-db"

	"cosmossdk.io/log/v2"

	"github.com/cosmos/cosmos-sdk/types/module"

	solomachine "github.com/cosmos/ibc-go/v11/modules/light-clients/06-solomachine"

	btctstypes "example.invalid/btcts/consumer/x/btcts/types"
)

// options are app options from a map.
type options map[string]any

func (o options) Get(key string) any { return o[key] }

const someAddress = "cosmos1zsyhp4z2czc273y7h4hu2g6wlaks9vpuzluqsn"

func TestAuthority(t *testing.T) {
	tests := []struct {
		name    string
		opts    options
		want    string
		wantErr string
	}{
		{name: "unset", opts: options{}, want: DefaultAuthority()},
		{name: "empty", opts: options{FlagAuthority: "  "}, want: DefaultAuthority()},
		{name: "configured", opts: options{FlagAuthority: someAddress}, want: someAddress},
		{name: "not bech32", opts: options{FlagAuthority: "alice"}, wantErr: "btcts.authority"},
		{name: "bad checksum", opts: options{FlagAuthority: someAddress[:len(someAddress)-1] + "x"}, wantErr: "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Authority(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Authority() = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Authority() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDefaultAuthorityIsGovModuleAccount(t *testing.T) {
	// The address chains conventionally use for x/gov, so tooling that assumes
	// it (e.g. a later gov module) agrees.
	if got, want := DefaultAuthority(), "cosmos10d07y265gmmuvt4z0w9aw880jnsr700j6zn9kn"; got != want {
		t.Fatalf("DefaultAuthority() = %s, want %s", got, want)
	}
}

func newTestApp(t *testing.T, opts options) *App {
	t.Helper()
	a, err := New(log.NewNopLogger(), dbm.NewMemDB(), false, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func TestNewRefusesABadAuthority(t *testing.T) {
	if _, err := New(log.NewNopLogger(), dbm.NewMemDB(), false, options{FlagAuthority: "nope"}); err == nil {
		t.Fatal("New accepted an invalid authority")
	}
	if got := newTestApp(t, options{FlagAuthority: someAddress}).AuthorityAddress(); got != someAddress {
		t.Fatalf("authority = %s, want %s", got, someAddress)
	}
}

func TestModules(t *testing.T) {
	a := newTestApp(t, options{})
	for _, name := range []string{
		"auth", "bank", "staking", "slashing", "consensus", "genutil", "upgrade", "ibc", solomachine.ModuleName,
		btctstypes.ModuleName,
	} {
		if _, ok := a.ModuleManager.Modules[name]; !ok {
			t.Errorf("module %s is not in the module manager", name)
		}
	}
	// The modules a consumer chain does not need are absent.
	for _, name := range []string{"gov", "mint", "distribution", "transfer"} {
		if _, ok := a.ModuleManager.Modules[name]; ok {
			t.Errorf("module %s should not be wired", name)
		}
	}
}

func TestBtctsPortIsRouted(t *testing.T) {
	router := newTestApp(t, options{}).IBCKeeper.PortKeeper.Router
	if !router.HasRoute(btctstypes.PortID) {
		t.Fatalf("no IBC route for port %q", btctstypes.PortID)
	}
	if router.HasRoute("transfer") {
		t.Fatal("an IBC route for transfer, which this chain does not run")
	}
}

// The default genesis validates once the chain has chosen what x/btcts
// cannot default: its source chains and its Bitcoin checkpoint.
func TestDefaultGenesisValidates(t *testing.T) {
	a := newTestApp(t, options{})
	genesis := a.DefaultGenesis()
	err := a.BasicModuleManager.ValidateGenesis(a.AppCodec(), a.TxConfig(), genesis)
	if err == nil || !strings.Contains(err.Error(), "trusted_header") {
		t.Fatalf("an incomplete btcts genesis validated: %v", err)
	}
	gs := btctstypes.DefaultGenesis()
	gs.Params.SourceChains = []string{"chain-a"}
	gs.Params.TrustedHeader = btctstypes.TrustedHeader{Height: 100, Header: make([]byte, btctstypes.HeaderSize)}
	genesis[btctstypes.ModuleName] = a.AppCodec().MustMarshalJSON(gs)
	if err := a.BasicModuleManager.ValidateGenesis(a.AppCodec(), a.TxConfig(), genesis); err != nil {
		t.Fatalf("default genesis does not validate: %v", err)
	}
	for name := range a.ModuleManager.Modules {
		if _, hasGenesis := a.ModuleManager.Modules[name].(module.HasGenesisBasics); hasGenesis {
			if _, ok := genesis[name]; !ok {
				t.Errorf("default genesis lacks %s", name)
			}
		}
	}
}

func TestSignModeDirectOnly(t *testing.T) {
	modes := newTestApp(t, options{}).TxConfig().SignModeHandler().SupportedModes()
	if len(modes) != 1 || modes[0].String() != "SIGN_MODE_DIRECT" {
		t.Fatalf("sign modes = %v, want only SIGN_MODE_DIRECT", modes)
	}
}
