package keeper

import (
	"context"

	errorsmod "cosmossdk.io/errors"

	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/x/btcts/types"
)

type msgServer struct{ k Keeper }

// NewMsgServer returns the module's Msg service.
func NewMsgServer(k Keeper) types.MsgServer { return msgServer{k: k} }

var _ types.MsgServer = msgServer{}

// UpdateParams replaces the params if the authority signed; a changed
// trusted header resets the known headers to it.
func (s msgServer) UpdateParams(ctx context.Context, msg *types.MsgUpdateParams) (*types.MsgUpdateParamsResponse, error) {
	if msg.Authority != s.k.authority {
		return nil, errorsmod.Wrapf(types.ErrUnauthorized, "expected %s, got %s", s.k.authority, msg.Authority)
	}
	old, err := s.k.GetParams(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.k.SetParams(ctx, msg.Params); err != nil {
		return nil, err
	}
	if !old.TrustedHeader.Same(msg.Params.TrustedHeader) {
		sdk.UnwrapSDKContext(ctx).EventManager().EmitEvent(sdk.NewEvent(types.EventTrustedHeaderReset,
			sdk.NewAttribute(types.AttributeBitcoinHeight, fmtUint(uint64(msg.Params.TrustedHeader.Height))),
		))
	}
	return &types.MsgUpdateParamsResponse{}, nil
}
