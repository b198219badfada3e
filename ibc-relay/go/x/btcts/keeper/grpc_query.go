package keeper

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"example.invalid/btcts/consumer/x/btcts/types"
)

type queryServer struct{ k Keeper }

// NewQueryServer returns the module's Query service.
func NewQueryServer(k Keeper) types.QueryServer { return queryServer{k: k} }

var _ types.QueryServer = queryServer{}

func internal(err error) error {
	if errors.Is(err, types.ErrMissingState) {
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func validChainID(id string) error {
	if err := types.ValidateChainID(id); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

func (q queryServer) Params(ctx context.Context, req *types.QueryParamsRequest) (*types.QueryParamsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	p, err := q.k.GetParams(ctx)
	if err != nil {
		return nil, internal(err)
	}
	return &types.QueryParamsResponse{Params: p}, nil
}

func (q queryServer) TrustedHeader(ctx context.Context, req *types.QueryTrustedHeaderRequest) (*types.QueryTrustedHeaderResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	h, err := q.k.TrustedTip(ctx)
	if err != nil {
		return nil, internal(err)
	}
	return &types.QueryTrustedHeaderResponse{Header: h}, nil
}

func (q queryServer) KnownHeader(ctx context.Context, req *types.QueryKnownHeaderRequest) (*types.QueryKnownHeaderResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	h, found, err := q.k.KnownHeader(ctx, req.Height)
	if err != nil {
		return nil, internal(err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no known header at height %d", req.Height)
	}
	return &types.QueryKnownHeaderResponse{Header: h}, nil
}

func (q queryServer) LatestTimestamp(ctx context.Context, req *types.QueryLatestTimestampRequest) (*types.QueryLatestTimestampResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	if err := validChainID(req.ChainId); err != nil {
		return nil, err
	}
	ts, found, err := q.k.LatestTimestamp(ctx, req.ChainId)
	if err != nil {
		return nil, internal(err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no verified timestamp of chain %s", req.ChainId)
	}
	return &types.QueryLatestTimestampResponse{Timestamp: ts}, nil
}

func (q queryServer) Timestamp(ctx context.Context, req *types.QueryTimestampRequest) (*types.QueryTimestampResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	if err := validChainID(req.ChainId); err != nil {
		return nil, err
	}
	ts, found, err := q.k.Timestamp(ctx, req.ChainId, req.Height)
	if err != nil {
		return nil, internal(err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no verified timestamp of chain %s at height %d", req.ChainId, req.Height)
	}
	return &types.QueryTimestampResponse{Timestamp: ts}, nil
}

func (q queryServer) LatestTimestamps(ctx context.Context, req *types.QueryLatestTimestampsRequest) (*types.QueryLatestTimestampsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	all, err := q.k.LatestTimestamps(ctx)
	if err != nil {
		return nil, internal(err)
	}
	return &types.QueryLatestTimestampsResponse{Timestamps: all}, nil
}

func (q queryServer) Conflicts(ctx context.Context, req *types.QueryConflictsRequest) (*types.QueryConflictsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	if err := validChainID(req.ChainId); err != nil {
		return nil, err
	}
	conflicts, err := q.k.ChainConflicts(ctx, req.ChainId)
	if err != nil {
		return nil, internal(err)
	}
	return &types.QueryConflictsResponse{Conflicts: conflicts}, nil
}
