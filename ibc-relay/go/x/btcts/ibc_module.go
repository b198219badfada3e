package btcts

import (
	"fmt"
	"strings"

	errorsmod "cosmossdk.io/errors"

	sdk "github.com/cosmos/cosmos-sdk/types"

	channeltypes "github.com/cosmos/ibc-go/v11/modules/core/04-channel/types"
	porttypes "github.com/cosmos/ibc-go/v11/modules/core/05-port/types"
	"github.com/cosmos/ibc-go/v11/modules/core/exported"

	"example.invalid/btcts/consumer/x/btcts/keeper"
	"example.invalid/btcts/consumer/x/btcts/types"
)

var _ porttypes.IBCModule = IBCModule{}

// IBCModule is the module's IBC application: port "btcts", UNORDERED
// channels of version "btcts-1" opened from this side to the btcts
// service's port "btcts". It only receives packets.
type IBCModule struct {
	keeper keeper.Keeper
}

// NewIBCModule builds the IBC application around the keeper.
func NewIBCModule(k keeper.Keeper) IBCModule { return IBCModule{keeper: k} }

// checkChannel checks what every channel of the module must be. The port
// router falls back to a substring match of port ids, so the port is
// checked here too.
func checkChannel(order channeltypes.Order, portID string, counterparty channeltypes.Counterparty) error {
	if portID != types.PortID {
		return errorsmod.Wrapf(types.ErrInvalidChannel, "port %q is not %q", portID, types.PortID)
	}
	if order != channeltypes.UNORDERED {
		return errorsmod.Wrapf(types.ErrInvalidChannel, "order %s is not %s", order, channeltypes.UNORDERED)
	}
	if counterparty.PortId != types.PortID {
		return errorsmod.Wrapf(types.ErrInvalidChannel,
			"counterparty port %q is not %q", counterparty.PortId, types.PortID)
	}
	return nil
}

// OnChanOpenInit accepts an UNORDERED channel between the "btcts" ports of
// version "btcts-1" (an empty proposal gets "btcts-1").
func (IBCModule) OnChanOpenInit(
	_ sdk.Context, order channeltypes.Order, _ []string, portID, _ string,
	counterparty channeltypes.Counterparty, version string,
) (string, error) {
	if err := checkChannel(order, portID, counterparty); err != nil {
		return "", err
	}
	if version != "" && version != types.Version {
		return "", errorsmod.Wrapf(types.ErrInvalidChannel, "version %q is not %q", version, types.Version)
	}
	return types.Version, nil
}

// OnChanOpenTry refuses: the btcts service is a solo machine and cannot
// initiate a handshake, so channels are opened from this chain's side.
func (IBCModule) OnChanOpenTry(
	_ sdk.Context, _ channeltypes.Order, _ []string, _, _ string, _ channeltypes.Counterparty, _ string,
) (string, error) {
	return "", errorsmod.Wrap(types.ErrInvalidChannel,
		"channels of port btcts are opened from this chain (ChanOpenInit), never by the counterparty")
}

// OnChanOpenAck checks the counterparty's version.
func (IBCModule) OnChanOpenAck(_ sdk.Context, portID, _, _, counterpartyVersion string) error {
	if portID != types.PortID {
		return errorsmod.Wrapf(types.ErrInvalidChannel, "port %q is not %q", portID, types.PortID)
	}
	if counterpartyVersion != types.Version {
		return errorsmod.Wrapf(types.ErrInvalidChannel,
			"counterparty version %q is not %q", counterpartyVersion, types.Version)
	}
	return nil
}

// OnChanOpenConfirm refuses: it only follows OnChanOpenTry, which is refused.
func (IBCModule) OnChanOpenConfirm(sdk.Context, string, string) error {
	return errorsmod.Wrap(types.ErrInvalidChannel, "channels of port btcts are never opened by the counterparty")
}

// OnChanCloseInit refuses: users may not close the module's channels.
func (IBCModule) OnChanCloseInit(sdk.Context, string, string) error {
	return errorsmod.Wrap(types.ErrInvalidChannel, "channels of port btcts cannot be closed by users")
}

// OnChanCloseConfirm accepts a close proven by the counterparty.
func (IBCModule) OnChanCloseConfirm(sdk.Context, string, string) error { return nil }

// OnRecvPacket verifies the packet's evidence. The acknowledgement's result
// is an encoded TimestampAck; a refusal is an error acknowledgement whose
// error is the reason, as docs/ibc.md §1 specifies (ibc-go's
// NewErrorAcknowledgement would keep only an ABCI code).
func (im IBCModule) OnRecvPacket(
	ctx sdk.Context, channelVersion string, packet channeltypes.Packet, _ sdk.AccAddress,
) exported.Acknowledgement {
	ack, err := im.receive(ctx, channelVersion, packet)
	if err != nil {
		reason := err.Error()
		if !keeper.IsRefusal(err) {
			ctx.Logger().Error("btcts: packet not processed", "error", err,
				"channel", packet.DestinationChannel, "sequence", packet.Sequence)
			reason = "internal: the chain could not process the packet"
		}
		ctx.EventManager().EmitEvent(sdk.NewEvent(types.EventPacketRefused,
			sdk.NewAttribute(types.AttributeReason, reason)))
		return errorAck(reason)
	}
	return channeltypes.NewResultAcknowledgement(ack)
}

func (im IBCModule) receive(ctx sdk.Context, channelVersion string, packet channeltypes.Packet) ([]byte, error) {
	if packet.DestinationPort != types.PortID {
		return nil, &keeper.Refusal{Kind: types.ErrInvalidChannel,
			Reason: fmt.Sprintf("channel: port %q is not %q", packet.DestinationPort, types.PortID)}
	}
	if channelVersion != types.Version {
		return nil, &keeper.Refusal{Kind: types.ErrInvalidChannel,
			Reason: fmt.Sprintf("channel: version %q is not %q", channelVersion, types.Version)}
	}
	ack, err := im.keeper.ReceivePacket(ctx, packet.GetData())
	if err != nil {
		return nil, err
	}
	bz, err := ack.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode acknowledgement: %w", err)
	}
	return bz, nil
}

// errorAck is an error acknowledgement carrying reason (one line, bounded).
func errorAck(reason string) channeltypes.Acknowledgement {
	reason = strings.ReplaceAll(reason, "\n", " ")
	const limit = 512
	if len(reason) > limit {
		reason = strings.ToValidUTF8(reason[:limit], "")
	}
	return channeltypes.Acknowledgement{Response: &channeltypes.Acknowledgement_Error{Error: reason}}
}

// OnAcknowledgementPacket refuses: the module never sends packets.
func (IBCModule) OnAcknowledgementPacket(sdk.Context, string, channeltypes.Packet, []byte, sdk.AccAddress) error {
	return errorsmod.Wrap(types.ErrNoAckExpected, "received an acknowledgement")
}

// OnTimeoutPacket refuses: the module never sends packets.
func (IBCModule) OnTimeoutPacket(sdk.Context, string, channeltypes.Packet, sdk.AccAddress) error {
	return errorsmod.Wrap(types.ErrNoAckExpected, "received a timeout")
}

// SetICS4Wrapper does nothing: the module neither sends packets nor writes
// acknowledgements asynchronously.
func (IBCModule) SetICS4Wrapper(porttypes.ICS4Wrapper) {}
