package keeper

import (
	"errors"
	"fmt"

	errorsmod "cosmossdk.io/errors"

	sdk "github.com/cosmos/cosmos-sdk/types"

	"example.invalid/btcts/consumer/packet"
	"example.invalid/btcts/consumer/verify"
	"example.invalid/btcts/consumer/x/btcts/types"
)

// Refusal is why a packet's evidence is not accepted. Reason is short and
// lowercase, in the style of the verifier's messages ("headers: …",
// "proof: …"); it becomes the error acknowledgement. Kind classifies it.
type Refusal struct {
	Kind   *errorsmod.Error
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Unwrap lets errors.Is match the registered kind.
func (r *Refusal) Unwrap() error { return r.Kind }

func refuse(kind *errorsmod.Error, format string, args ...any) *Refusal {
	return &Refusal{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// ReceivePacket verifies packet data from the known header right before its
// first one and, if it verifies, stores its headers, advances the trusted
// tip and records the timestamp; a timestamp of this chain itself releases
// holds or reveals a fork (unbonding.go). It returns the acknowledgement's
// result.
// A *Refusal means the evidence was refused and nothing was written; any
// other error is a store failure. Gas of gas_per_header per header is
// charged before the verification.
func (k Keeper) ReceivePacket(ctx sdk.Context, data []byte) (*packet.TimestampAck, error) {
	params, err := k.GetParams(ctx)
	if err != nil {
		return nil, err
	}
	var pkt packet.TimestampPacket
	if err := pkt.Unmarshal(data); err != nil {
		return nil, refuse(types.ErrInvalidPacket, "packet does not decode: %v", err)
	}
	n := len(pkt.Headers)
	if n == 0 || n > int(params.MaxHeadersPerPacket) {
		return nil, refuse(types.ErrTooManyHeaders,
			"headers: %d headers; 1 to %d are allowed", n, params.MaxHeadersPerPacket)
	}
	ctx.GasMeter().ConsumeGas(params.EffectiveGasPerHeader()*uint64(n), "btcts packet headers")

	first := pkt.FirstHeight
	last := uint64(first) + uint64(n) - 1
	if first == 0 || last > uint64(^uint32(0)) {
		return nil, refuse(types.ErrInvalidPacket,
			"headers: %d headers from height %d do not fit the height range", n, first)
	}
	start, found, err := k.KnownHeader(ctx, first-1)
	if err != nil {
		return nil, err
	}
	if !found {
		lowest, highest, err := k.KnownRange(ctx)
		if err != nil {
			return nil, err
		}
		return nil, refuse(types.ErrUnknownStartHeader,
			"headers: no known header at height %d, right before the first one (known: %d to %d)",
			first-1, lowest, highest)
	}
	tip, err := k.Tip.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("read trusted tip: %w", err)
	}
	if last < uint64(tip) {
		return nil, refuse(types.ErrShorterChain,
			"headers: they end at height %d, below the trusted tip at %d", last, tip)
	}

	trusted, err := start.ToVerify()
	if err != nil {
		return nil, fmt.Errorf("known header at height %d: %w", start.Height, err)
	}
	vp, err := params.VerifyParams()
	if err != nil {
		return nil, err
	}
	v, err := verify.VerifyPacket(data, trusted, vp)
	if err != nil {
		return nil, refuse(types.ErrInvalidEvidence, "%s", err.Error())
	}

	headers := make([]types.TrustedHeader, len(v.Headers))
	for i, h := range v.Headers {
		headers[i] = types.FromVerify(h)
	}
	if err := k.extendHeaders(ctx, headers, params.HeaderWindow); err != nil {
		return nil, err
	}
	ts := newTimestamp(ctx, v)
	if err := k.recordTimestamp(ctx, ts); err != nil {
		return nil, err
	}
	if err := k.checkOwnTimestamp(ctx, ts, params.K); err != nil {
		return nil, err
	}
	return &packet.TimestampAck{
		ChainId:       v.ChainID,
		Height:        v.Height,
		BitcoinHeight: v.BitcoinHeight,
		Depth:         v.Depth,
	}, nil
}

// IsRefusal tells whether err refused the evidence (an error
// acknowledgement), as opposed to a failure of the chain itself.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}
