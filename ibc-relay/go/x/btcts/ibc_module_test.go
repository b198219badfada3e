package btcts_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	storetypes "github.com/cosmos/cosmos-sdk/store/v2/types"

	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	"github.com/cosmos/cosmos-sdk/runtime"
	"github.com/cosmos/cosmos-sdk/testutil"
	sdk "github.com/cosmos/cosmos-sdk/types"

	clienttypes "github.com/cosmos/ibc-go/v11/modules/core/02-client/types"
	channeltypes "github.com/cosmos/ibc-go/v11/modules/core/04-channel/types"

	"example.invalid/btcts/consumer/packet"
	"example.invalid/btcts/consumer/x/btcts"
	"example.invalid/btcts/consumer/x/btcts/internal/btctest"
	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

const authority = "cosmos10d07y265gmmuvt4z0w9aw880jnsr700j6zn9kn"

func setup(t *testing.T) (btcts.IBCModule, btcts.AppModule, sdk.Context, *btctest.Chain, codec.Codec) {
	t.Helper()
	key := storetypes.NewKVStoreKey(types.StoreKey)
	ctx := testutil.DefaultContextWithDB(t, key, storetypes.NewTransientStoreKey("t")).Ctx
	registry := codectypes.NewInterfaceRegistry()
	types.RegisterInterfaces(registry)
	cdc := codec.NewProtoCodec(registry)
	k := keeper.NewKeeper(cdc, runtime.NewKVStoreService(key), authority, btctest.NewStaking())
	chain := btctest.NewChain(t, 100)
	p := types.DefaultParams()
	p.Network, p.K, p.SourceChains = "regtest", 2, []string{"cosmoshub-4"}
	checkpoint := chain.Header(100)
	p.TrustedHeader = types.TrustedHeader{Height: 100, Header: checkpoint[:]}
	am := btcts.NewAppModule(cdc, k)
	gs := types.GenesisState{Params: p}
	am.InitGenesis(ctx, cdc, cdc.MustMarshalJSON(&gs))
	return btcts.NewIBCModule(k), am, ctx, chain, cdc
}

func TestChannelHandshake(t *testing.T) {
	im, _, ctx, _, _ := setup(t)
	good := channeltypes.NewCounterparty(types.PortID, "")
	tests := []struct {
		name         string
		order        channeltypes.Order
		port         string
		counterparty channeltypes.Counterparty
		version      string
		err          string
	}{
		{"proposed version", channeltypes.UNORDERED, types.PortID, good, types.Version, ""},
		{"empty version", channeltypes.UNORDERED, types.PortID, good, "", ""},
		{"ordered", channeltypes.ORDERED, types.PortID, good, types.Version, "order"},
		{"port containing btcts", channeltypes.UNORDERED, "xbtcts", good, types.Version, `port "xbtcts"`},
		{"transfer port", channeltypes.UNORDERED, "transfer", good, types.Version, `port "transfer"`},
		{"counterparty port", channeltypes.UNORDERED, types.PortID, channeltypes.NewCounterparty("transfer", ""), types.Version, "counterparty port"},
		{"other version", channeltypes.UNORDERED, types.PortID, good, "ics20-1", `version "ics20-1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			version, err := im.OnChanOpenInit(ctx, tc.order, []string{"connection-0"}, tc.port, "channel-0", tc.counterparty, tc.version)
			if tc.err == "" {
				require.NoError(t, err)
				require.Equal(t, types.Version, version)
				return
			}
			require.ErrorIs(t, err, types.ErrInvalidChannel)
			require.Contains(t, err.Error(), tc.err)
		})
	}

	_, err := im.OnChanOpenTry(ctx, channeltypes.UNORDERED, []string{"connection-0"}, types.PortID, "channel-0", good, types.Version)
	require.ErrorContains(t, err, "opened from this chain")
	require.NoError(t, im.OnChanOpenAck(ctx, types.PortID, "channel-0", "channel-0", types.Version))
	require.ErrorContains(t, im.OnChanOpenAck(ctx, types.PortID, "channel-0", "channel-0", "btcts-2"), `counterparty version "btcts-2"`)
	require.ErrorContains(t, im.OnChanOpenAck(ctx, "xbtcts", "channel-0", "channel-0", types.Version), "port")
	require.Error(t, im.OnChanOpenConfirm(ctx, types.PortID, "channel-0"))
	require.ErrorContains(t, im.OnChanCloseInit(ctx, types.PortID, "channel-0"), "cannot be closed")
	require.NoError(t, im.OnChanCloseConfirm(ctx, types.PortID, "channel-0"))
	pkt := channeltypes.Packet{DestinationPort: types.PortID}
	require.ErrorIs(t, im.OnAcknowledgementPacket(ctx, types.Version, pkt, nil, nil), types.ErrNoAckExpected)
	require.ErrorIs(t, im.OnTimeoutPacket(ctx, types.Version, pkt, nil), types.ErrNoAckExpected)
}

func recvPacket(data []byte) channeltypes.Packet {
	return channeltypes.NewPacket(data, 1, types.PortID, "channel-0", types.PortID, "channel-0",
		clienttypes.ZeroHeight(), 1_900_000_000_000_000_000)
}

func TestOnRecvPacketAcknowledgements(t *testing.T) {
	im, _, ctx, chain, _ := setup(t)
	b := chain.Anchor("regtest", btctest.DefaultTag, 0, btctest.NewRecord("cosmoshub-4", 12, 1))
	chain.Mine(1) // 102
	good := chain.Packet(t, b, 0, 101, 102)

	// Success: the result is the encoded TimestampAck.
	ack := im.OnRecvPacket(ctx, types.Version, recvPacket(good), nil)
	require.True(t, ack.Success())
	// The standard JSON form: {"result": base64 of the TimestampAck}.
	var raw map[string][]byte
	require.NoError(t, json.Unmarshal(ack.Acknowledgement(), &raw))
	require.Len(t, raw, 1)
	var result packet.TimestampAck
	require.NoError(t, result.Unmarshal(raw["result"]))
	require.Equal(t, packet.TimestampAck{ChainId: "cosmoshub-4", Height: 12, BitcoinHeight: 101, Depth: 2}, result)

	tests := []struct {
		name    string
		version string
		packet  channeltypes.Packet
		reason  string
	}{
		{"shorter chain", types.Version, recvPacket(chain.Packet(t, b, 0, 101, 101)), "headers: they end at height 101, below the trusted tip at 102"},
		{"garbage", types.Version, recvPacket([]byte("not a packet")), "packet does not decode: proto: illegal wireType 6"},
		{"wrong version", "ics20-1", recvPacket(good), `channel: version "ics20-1" is not "btcts-1"`},
		{"wrong port", types.Version, channeltypes.NewPacket(good, 1, types.PortID, "channel-0", "xbtcts", "channel-0",
			clienttypes.ZeroHeight(), 1), `channel: port "xbtcts" is not "btcts"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := sdk.NewEventManager()
			ack := im.OnRecvPacket(ctx.WithEventManager(events), tc.version, tc.packet, nil)
			require.False(t, ack.Success())
			// The standard JSON form with the reason itself in "error".
			var raw map[string]string
			require.NoError(t, json.Unmarshal(ack.Acknowledgement(), &raw))
			require.Equal(t, map[string]string{"error": tc.reason}, raw)
			require.Len(t, events.Events(), 1)
			ev := events.Events()[0]
			require.Equal(t, types.EventPacketRefused, ev.Type)
			require.Equal(t, tc.reason, ev.Attributes[0].Value)
		})
	}
}

func TestModuleGenesisJSON(t *testing.T) {
	_, am, ctx, _, cdc := setup(t)
	require.ErrorContains(t, am.ValidateGenesis(cdc, nil, am.DefaultGenesis(cdc)), "trusted_header: missing")
	exported := am.ExportGenesis(ctx, cdc)
	require.NoError(t, am.ValidateGenesis(cdc, nil, exported))
	require.Error(t, am.ValidateGenesis(cdc, nil, json.RawMessage(`{"params":{"k":"x"}}`)))
}
