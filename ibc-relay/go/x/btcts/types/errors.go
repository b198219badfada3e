package types

import errorsmod "cosmossdk.io/errors"

// Registered errors of the module. Refused packets carry a reason of their
// own (see keeper.Refusal); these classify it.
var (
	ErrInvalidParams      = errorsmod.Register(ModuleName, 2, "invalid params")
	ErrInvalidGenesis     = errorsmod.Register(ModuleName, 3, "invalid genesis")
	ErrUnauthorized       = errorsmod.Register(ModuleName, 4, "signer is not the module's authority")
	ErrInvalidChannel     = errorsmod.Register(ModuleName, 5, "invalid channel")
	ErrInvalidPacket      = errorsmod.Register(ModuleName, 6, "packet does not decode")
	ErrTooManyHeaders     = errorsmod.Register(ModuleName, 7, "too many headers")
	ErrUnknownStartHeader = errorsmod.Register(ModuleName, 8, "no known header before the packet's first")
	ErrShorterChain       = errorsmod.Register(ModuleName, 9, "headers end below the trusted tip")
	ErrInvalidEvidence    = errorsmod.Register(ModuleName, 10, "evidence does not verify")
	ErrNoAckExpected      = errorsmod.Register(ModuleName, 11, "this module sends no packets")
	ErrMissingState       = errorsmod.Register(ModuleName, 12, "module state is missing")
)
