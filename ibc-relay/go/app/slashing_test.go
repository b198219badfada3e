package app

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
	dbm "github.com/cosmos/cosmos-db"

	"cosmossdk.io/log/v2"
	sdkmath "cosmossdk.io/math"

	"github.com/cosmos/cosmos-sdk/baseapp"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	"github.com/cosmos/cosmos-sdk/crypto/keys/ed25519"
	"github.com/cosmos/cosmos-sdk/crypto/keys/secp256k1"
	sdk "github.com/cosmos/cosmos-sdk/types"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	stakingkeeper "github.com/cosmos/cosmos-sdk/x/staking/keeper"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"

	btctskeeper "example.invalid/btcts/consumer/x/btcts/keeper"
	btctstypes "example.invalid/btcts/consumer/x/btcts/types"
)

// The chain of these tests: staking's unbonding_time is short, x/btcts's
// max_hold long, blocks 5 s apart.
const (
	slashChainID       = "btcts-slash-1"
	slashUnbondingTime = 10 * time.Minute
	slashMaxHold       = time.Hour
	slashBlockGap      = 5 * time.Second
)

// million is n units of consensus power in tokens (sdk.DefaultPowerReduction
// is 10^6).
func million(n int64) sdkmath.Int { return sdkmath.NewInt(n * 1_000_000) }

// slashChain is the real app on an in-memory DB, driven block by block
// through FinalizeBlock and Commit, with two bonded validators V and W and a
// delegator D.
type slashChain struct {
	t      *testing.T
	app    *App
	height int64
	time   time.Time

	valV, valW      sdk.ValAddress
	consV           sdk.ConsAddress
	delegator       sdk.AccAddress
	delegatorLiquid sdkmath.Int
	hashes          map[int64][]byte
	genesisPowerOfV int64
}

// newSlashChain starts the chain from a genesis in which V has 200 (100
// self-delegated by its operator, 100 by D) and W 100 (its operator's), and D
// holds 10 liquid; staking's unbonding_time and x/btcts's max_hold are the
// constants above. Block 1 is finalized and committed.
func newSlashChain(t *testing.T) *slashChain {
	t.Helper()
	a, err := New(log.NewNopLogger(), dbm.NewMemDB(), true, options{}, baseapp.SetChainID(slashChainID))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	account := func(seed string) sdk.AccAddress {
		return sdk.AccAddress(secp256k1.GenPrivKeyFromSecret([]byte(seed)).PubKey().Address())
	}
	opV, opW, delegator := account("operator V"), account("operator W"), account("delegator D")
	pkV := ed25519.GenPrivKeyFromSecret([]byte("consensus V")).PubKey()
	pkW := ed25519.GenPrivKeyFromSecret([]byte("consensus W")).PubKey()
	c := &slashChain{
		t: t, app: a, time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		valV: sdk.ValAddress(opV), valW: sdk.ValAddress(opW), consV: sdk.ConsAddress(pkV.Address()),
		delegator: delegator, delegatorLiquid: million(10), hashes: map[int64][]byte{},
	}

	cdc := a.AppCodec()
	genesis := a.DefaultGenesis()
	validator := func(op sdk.ValAddress, pk *ed25519.PubKey, tokens sdkmath.Int) stakingtypes.Validator {
		pkAny, err := codectypes.NewAnyWithValue(pk)
		if err != nil {
			t.Fatalf("consensus key: %v", err)
		}
		return stakingtypes.Validator{
			OperatorAddress: op.String(), ConsensusPubkey: pkAny, Status: stakingtypes.Bonded,
			Tokens: tokens, DelegatorShares: sdkmath.LegacyNewDecFromInt(tokens),
			UnbondingTime:     time.Unix(0, 0).UTC(),
			Commission:        stakingtypes.NewCommission(sdkmath.LegacyZeroDec(), sdkmath.LegacyZeroDec(), sdkmath.LegacyZeroDec()),
			MinSelfDelegation: sdkmath.OneInt(),
		}
	}
	delegation := func(d sdk.AccAddress, v sdk.ValAddress, amount sdkmath.Int) stakingtypes.Delegation {
		return stakingtypes.NewDelegation(d.String(), v.String(), sdkmath.LegacyNewDecFromInt(amount))
	}
	stakingParams := stakingtypes.DefaultParams()
	stakingParams.BondDenom = BondDenom
	stakingParams.UnbondingTime = slashUnbondingTime
	genesis[stakingtypes.ModuleName] = cdc.MustMarshalJSON(stakingtypes.NewGenesisState(stakingParams,
		[]stakingtypes.Validator{validator(c.valV, pkV.(*ed25519.PubKey), million(200)), validator(c.valW, pkW.(*ed25519.PubKey), million(100))},
		[]stakingtypes.Delegation{
			delegation(opV, c.valV, million(100)), delegation(delegator, c.valV, million(100)),
			delegation(opW, c.valW, million(100)),
		}))

	var accounts []authtypes.GenesisAccount
	for _, addr := range []sdk.AccAddress{opV, opW, delegator} {
		accounts = append(accounts, authtypes.NewBaseAccount(addr, nil, 0, 0))
	}
	genesis[authtypes.ModuleName] = cdc.MustMarshalJSON(authtypes.NewGenesisState(authtypes.DefaultParams(), accounts))
	balances := []banktypes.Balance{
		{Address: delegator.String(), Coins: sdk.NewCoins(sdk.NewCoin(BondDenom, c.delegatorLiquid))},
		{Address: authtypes.NewModuleAddress(stakingtypes.BondedPoolName).String(), Coins: sdk.NewCoins(sdk.NewCoin(BondDenom, million(300)))},
	}
	supply := sdk.NewCoins(sdk.NewCoin(BondDenom, million(310)))
	genesis[banktypes.ModuleName] = cdc.MustMarshalJSON(banktypes.NewGenesisState(banktypes.DefaultParams(), balances, supply, nil, nil))

	btcts := btctstypes.DefaultGenesis()
	btcts.Params.SourceChains = []string{slashChainID}
	btcts.Params.TrustedHeader = btctstypes.TrustedHeader{Height: 100, Header: make([]byte, btctstypes.HeaderSize)}
	btcts.Params.MaxHold = slashMaxHold
	genesis[btctstypes.ModuleName] = cdc.MustMarshalJSON(btcts)

	if err := a.BasicModuleManager.ValidateGenesis(cdc, a.TxConfig(), genesis); err != nil {
		t.Fatalf("genesis does not validate: %v", err)
	}
	state, err := json.Marshal(genesis)
	if err != nil {
		t.Fatalf("encode genesis: %v", err)
	}
	params := cmttypes.DefaultConsensusParams().ToProto()
	if _, err := a.InitChain(&abci.RequestInitChain{
		Time: c.time, ChainId: slashChainID, ConsensusParams: &params, AppStateBytes: state, InitialHeight: 1,
	}); err != nil {
		t.Fatalf("InitChain: %v", err)
	}
	// Block 1 runs on InitChain's finalize state, so nothing may reset it.
	c.finalize(c.time)
	return c
}

// finalize runs FinalizeBlock at the next height and the given time, then
// Commit. The block hash is a digest of the height, which x/btcts records
// as the chain's own.
func (c *slashChain) finalize(at time.Time) {
	c.t.Helper()
	height := c.height + 1
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], uint64(height))
	hash := sha256.Sum256(h[:])
	if _, err := c.app.FinalizeBlock(&abci.RequestFinalizeBlock{Height: height, Time: at, Hash: hash[:]}); err != nil {
		c.t.Fatalf("FinalizeBlock at height %d: %v", height, err)
	}
	if _, err := c.app.Commit(); err != nil {
		c.t.Fatalf("Commit at height %d: %v", height, err)
	}
	c.height, c.time, c.hashes[height] = height, at, hash[:]
}

// block finalizes the next block after gap; do, if given, runs first on the
// block's own finalize state (before its BeginBlock), as a transaction's or
// an evidence handler's writes would be part of that block.
func (c *slashChain) block(gap time.Duration, do func(ctx sdk.Context) error) {
	c.t.Helper()
	at := c.time.Add(gap)
	if do != nil {
		ctx := c.app.NewNextBlockContext(cmtproto.Header{ChainID: slashChainID, Height: c.height + 1, Time: at})
		if err := do(ctx); err != nil {
			c.t.Fatalf("at height %d: %v", c.height+1, err)
		}
	}
	c.finalize(at)
}

// query is a context on the committed state, at the last block's time.
func (c *slashChain) query() sdk.Context {
	return c.app.NewContextLegacy(true, cmtproto.Header{ChainID: slashChainID, Height: c.height, Time: c.time})
}

// holds are x/btcts's holds, from its gRPC query server.
func (c *slashChain) holds() []btctstypes.Hold {
	c.t.Helper()
	res, err := btctskeeper.NewQueryServer(c.app.BtctsKeeper).Holds(c.query(), &btctstypes.QueryHoldsRequest{})
	if err != nil {
		c.t.Fatalf("query holds: %v", err)
	}
	return res.Holds
}

// liquid is D's spendable stake.
func (c *slashChain) liquid() sdkmath.Int {
	return c.app.BankKeeper.GetBalance(c.query(), c.delegator, BondDenom).Amount
}

// delegatedToW is the stake D's delegation to W is worth (zero if none).
func (c *slashChain) delegatedToW() sdkmath.Int {
	c.t.Helper()
	ctx := c.query()
	del, err := c.app.StakingKeeper.GetDelegation(ctx, c.delegator, c.valW)
	if errors.Is(err, stakingtypes.ErrNoDelegation) {
		return sdkmath.ZeroInt()
	}
	if err != nil {
		c.t.Fatalf("delegation to W: %v", err)
	}
	w, err := c.app.StakingKeeper.GetValidator(ctx, c.valW)
	if err != nil {
		c.t.Fatalf("validator W: %v", err)
	}
	return w.TokensFromShares(del.Shares).TruncateInt()
}

// entry is the state of D's one unbonding (or redelegation) entry: whether
// it exists, its unbonding id, balance, hold count and completion time.
type entry struct {
	found          bool
	id             uint64
	balance        sdkmath.Int
	onHold         int64
	completionTime time.Time
}

// unbondingKind is an unbonding delegation from V or a redelegation from V
// to W: how D starts it, where its entry is, and what D owns once it ends.
type unbondingKind struct {
	name string
	// moved: the stake is D's at once (delegated to W), not when the entry
	// completes.
	moved bool
	start func(c *slashChain, ctx sdk.Context, amount sdkmath.Int) error
	entry func(c *slashChain) entry
	owned func(c *slashChain) sdkmath.Int
}

var unbondingKinds = []unbondingKind{
	{
		name: "unbonding delegation",
		start: func(c *slashChain, ctx sdk.Context, amount sdkmath.Int) error {
			_, err := stakingkeeper.NewMsgServerImpl(c.app.StakingKeeper).Undelegate(ctx, &stakingtypes.MsgUndelegate{
				DelegatorAddress: c.delegator.String(), ValidatorAddress: c.valV.String(),
				Amount: sdk.NewCoin(BondDenom, amount),
			})
			return err
		},
		entry: func(c *slashChain) entry {
			ubd, err := c.app.StakingKeeper.GetUnbondingDelegation(c.query(), c.delegator, c.valV)
			if errors.Is(err, stakingtypes.ErrNoUnbondingDelegation) {
				return entry{}
			}
			if err != nil || len(ubd.Entries) != 1 {
				c.t.Fatalf("unbonding delegation: %v, %d entries", err, len(ubd.Entries))
			}
			e := ubd.Entries[0]
			return entry{true, e.UnbondingId, e.Balance, e.UnbondingOnHoldRefCount, e.CompletionTime}
		},
		// Less the 10 D kept liquid from genesis.
		owned: func(c *slashChain) sdkmath.Int { return c.liquid().Sub(c.delegatorLiquid) },
	},
	{
		name:  "redelegation",
		moved: true,
		start: func(c *slashChain, ctx sdk.Context, amount sdkmath.Int) error {
			_, err := stakingkeeper.NewMsgServerImpl(c.app.StakingKeeper).BeginRedelegate(ctx, &stakingtypes.MsgBeginRedelegate{
				DelegatorAddress: c.delegator.String(), ValidatorSrcAddress: c.valV.String(),
				ValidatorDstAddress: c.valW.String(), Amount: sdk.NewCoin(BondDenom, amount),
			})
			return err
		},
		entry: func(c *slashChain) entry {
			red, err := c.app.StakingKeeper.GetRedelegation(c.query(), c.delegator, c.valV, c.valW)
			if errors.Is(err, stakingtypes.ErrNoRedelegation) {
				return entry{}
			}
			if err != nil || len(red.Entries) != 1 {
				c.t.Fatalf("redelegation: %v, %d entries", err, len(red.Entries))
			}
			e := red.Entries[0]
			return entry{true, e.UnbondingId, e.InitialBalance, e.UnbondingOnHoldRefCount, e.CompletionTime}
		},
		owned: (*slashChain).delegatedToW,
	},
}

// A slash of V for an infraction before an unbonding (or redelegation) from
// V still reduces it while x/btcts holds it, even after staking's
// unbonding_time has passed, and D gets only what is left when max_hold
// releases it. Control: the same entry released early (by a k-deep timestamp
// of this chain) completes at unbonding_time, and the same slash afterwards
// takes nothing from D — as the SDK does for every mature entry not on hold.
func TestSlashReducesHeldUnbondings(t *testing.T) {
	const infractionHeight = 2
	amount := million(50)
	fraction := sdkmath.LegacyNewDecWithPrec(1, 1) // 10 %
	slashed := fraction.MulInt(amount).TruncateInt()

	for _, kind := range unbondingKinds {
		for _, held := range []bool{true, false} {
			name := kind.name + "/held until max_hold"
			if !held {
				name = kind.name + "/released early (control)"
			}
			t.Run(name, func(t *testing.T) {
				c := newSlashChain(t)
				c.block(slashBlockGap, nil) // height 2: the infraction
				c.block(slashBlockGap, func(ctx sdk.Context) error { return kind.start(c, ctx, amount) })
				startHeight, startTime := c.height, c.time
				if startHeight <= infractionHeight {
					t.Fatalf("unbonding at height %d, not after the infraction at %d", startHeight, infractionHeight)
				}

				e := kind.entry(c)
				holds := c.holds()
				if !e.found || e.onHold != 1 || !e.balance.Equal(amount) {
					t.Fatalf("entry after the unbonding = %+v, want one of %s on hold once", e, amount)
				}
				if len(holds) != 1 || holds[0].UnbondingId != e.id || holds[0].Height != startHeight ||
					!holds[0].Time.Equal(startTime) {
					t.Fatalf("holds = %+v, want unbonding %d at height %d, %s", holds, e.id, startHeight, startTime)
				}
				ownedWhileHeld := sdkmath.ZeroInt()
				if kind.moved {
					ownedWhileHeld = amount
				}
				if got := kind.owned(c); !got.Equal(ownedWhileHeld) {
					t.Fatalf("D owns %s of the unbonding before it ends, want %s", got, ownedWhileHeld)
				}

				if !held {
					// A timestamp of this chain at the unbonding's height, k
					// deep, with the chain's own hash: x/btcts's EndBlock
					// releases the hold before the entry matures.
					c.block(slashBlockGap, func(ctx sdk.Context) error {
						params, err := c.app.BtctsKeeper.GetParams(ctx)
						if err != nil {
							return err
						}
						return c.app.BtctsKeeper.OwnTimestamp.Set(ctx, btctstypes.VerifiedTimestamp{
							ChainId: slashChainID, Height: uint64(startHeight), BlockHash: c.hashes[startHeight],
							StakerSetDigest: make([]byte, 32), RecordId: make([]byte, 32),
							BitcoinHeight: 101, BitcoinBlock: make([]byte, 32), Depth: params.K,
							ConsumerHeight: c.height + 1,
						})
					})
					if got := c.holds(); len(got) != 0 {
						t.Fatalf("holds after the timestamp = %+v, want none", got)
					}
					if e := kind.entry(c); !e.found || e.onHold != 0 {
						t.Fatalf("entry after the timestamp = %+v, want it waiting for unbonding_time, not on hold", e)
					}
				}

				// Past staking's unbonding_time.
				c.block(startTime.Add(slashUnbondingTime+time.Second).Sub(c.time), nil)
				e = kind.entry(c)
				if held {
					if !e.found || e.onHold != 1 || !e.completionTime.Before(c.time) || !e.balance.Equal(amount) {
						t.Fatalf("entry past unbonding_time = %+v at %s, want it mature, held and whole", e, c.time)
					}
					if got := c.holds(); len(got) != 1 {
						t.Fatalf("holds past unbonding_time = %+v, want the one", got)
					}
					if got := kind.owned(c); !got.Equal(ownedWhileHeld) {
						t.Fatalf("D owns %s of a held unbonding, want %s", got, ownedWhileHeld)
					}
				} else {
					if e.found {
						t.Fatalf("unheld entry past unbonding_time = %+v, want it completed", e)
					}
					if got := kind.owned(c); !got.Equal(amount) {
						t.Fatalf("D owns %s after the unheld entry completed, want %s", got, amount)
					}
				}

				// V is slashed for the infraction at height 2 (before the
				// unbonding), at its power then.
				c.block(slashBlockGap, func(ctx sdk.Context) error {
					_, err := c.app.StakingKeeper.Slash(ctx, c.consV, infractionHeight, c.genesisPowerOfV, fraction)
					return err
				})
				want := amount
				if held {
					want = amount.Sub(slashed)
				}
				switch {
				case held && !kind.moved:
					// The SDK slashes an unbonding delegation in its entry.
					if e := kind.entry(c); !e.found || !e.balance.Equal(want) {
						t.Fatalf("held entry after the slash = %+v, want a balance of %s", e, want)
					}
					if got := kind.owned(c); !got.IsZero() {
						t.Fatalf("D owns %s of a held unbonding after the slash", got)
					}
				default:
					// A redelegation in the delegation it moved to W; a
					// completed unbonding is D's and out of reach.
					if got := kind.owned(c); !got.Equal(want) {
						t.Fatalf("D owns %s after the slash, want %s", got, want)
					}
				}

				// Past max_hold: x/btcts releases the hold and, the entry
				// being mature, staking completes it at once.
				c.block(startTime.Add(slashMaxHold+time.Second).Sub(c.time), nil)
				if got := c.holds(); len(got) != 0 {
					t.Fatalf("holds past max_hold = %+v, want none", got)
				}
				if e := kind.entry(c); e.found {
					t.Fatalf("entry past max_hold = %+v, want it completed", e)
				}
				if got := kind.owned(c); !got.Equal(want) {
					t.Fatalf("D owns %s at the end, want %s", got, want)
				}
			})
		}
	}
}
