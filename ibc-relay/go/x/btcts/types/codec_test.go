package types_test

import (
	"testing"

	"github.com/cosmos/gogoproto/proto"
	"github.com/stretchr/testify/require"

	"github.com/cosmos/cosmos-sdk/types/msgservice"

	"github.com/cosmos/cosmos-sdk/codec"
	"github.com/cosmos/cosmos-sdk/codec/testutil"
	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/x/btcts/types"
)

// The authority signs MsgUpdateParams: the SDK finds the signer through the
// proto's cosmos.msg.v1.signer option, as an app's ante handler does.
func TestMsgUpdateParamsSigner(t *testing.T) {
	registry := testutil.CodecOptions{}.NewInterfaceRegistry()
	types.RegisterInterfaces(registry)
	require.NoError(t, registry.SigningContext().Validate())
	cdc := codec.NewProtoCodec(registry)

	authority := sdk.AccAddress([]byte("btcts-test-authority"))
	bech32, err := registry.SigningContext().AddressCodec().BytesToString(authority)
	require.NoError(t, err)
	msg := types.NewMsgUpdateParams(bech32, validParams())
	signers, _, err := cdc.GetMsgV1Signers(msg)
	require.NoError(t, err)
	require.Equal(t, [][]byte{authority}, signers)

	// And the message round-trips inside an Any, as in a transaction.
	var decoded sdk.Msg
	bz, err := cdc.MarshalInterfaceJSON(msg)
	require.NoError(t, err)
	require.NoError(t, cdc.UnmarshalInterfaceJSON(bz, &decoded))
	require.Equal(t, msg, decoded)
}

// The module's proto files merge with the SDK's without conflicts and carry
// the annotations an app checks at start-up.
func TestProtoFilesMergeAndAreAnnotated(t *testing.T) {
	files, err := proto.MergedRegistry()
	require.NoError(t, err)
	_, err = files.FindDescriptorByName("btcts.consumer.v1.Msg")
	require.NoError(t, err)
	require.NoError(t, msgservice.ValidateProtoAnnotations(files))
}
