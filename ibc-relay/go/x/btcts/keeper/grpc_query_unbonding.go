package keeper

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cosmossdk.io/collections"

	"github.com/cosmos/cosmos-sdk/types/query"

	"example.invalid/btcts/consumer/x/btcts/types"
)

func (q queryServer) Holds(ctx context.Context, req *types.QueryHoldsRequest) (*types.QueryHoldsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	holds, page, err := query.CollectionPaginate(ctx, q.k.Holds, req.Pagination,
		func(_ collections.Pair[int64, uint64], h types.Hold) (types.Hold, error) { return h, nil })
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	res := &types.QueryHoldsResponse{Holds: holds, Pagination: page}
	own, found, err := getOptional(ctx, q.k.OwnTimestamp)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if found {
		res.OwnTimestamp = &own
	}
	return res, nil
}

func (q queryServer) Forks(ctx context.Context, req *types.QueryForksRequest) (*types.QueryForksResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	forks, page, err := query.CollectionPaginate(ctx, q.k.Forks, req.Pagination,
		func(_ collections.Pair[uint64, []byte], f types.Fork) (types.Fork, error) { return f, nil })
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &types.QueryForksResponse{Forks: forks, Pagination: page}, nil
}

func (q queryServer) OwnHash(ctx context.Context, req *types.QueryOwnHashRequest) (*types.QueryOwnHashResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	hash, err := q.k.OwnHashes.Get(ctx, req.Height)
	if errors.Is(err, collections.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no own block hash kept at height %d", req.Height)
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &types.QueryOwnHashResponse{Hash: hash}, nil
}
