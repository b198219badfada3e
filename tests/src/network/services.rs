//! The gRPC services of the test consumer: `cosmos.tx.v1beta1.Service`,
//! `cosmos.auth.v1beta1.Query` and `cosmos.base.tendermint.v1beta1.Service`
//! over the shared [`Chain`].

use super::*;

/// What the server's handlers share.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub(super) chain: Arc<Mutex<Chain>>,
    pub(super) stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    /// While set, every call fails as if the node were unreachable (open
    /// connections live in their own tasks and would otherwise go on).
    pub(super) down: Arc<std::sync::atomic::AtomicBool>,
}

impl Shared {
    #[allow(clippy::result_large_err)] // tonic handlers answer with `Status`
    fn chain(&self) -> Result<MutexGuard<'_, Chain>, Status> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Status::unavailable("the node is down"));
        }
        self.chain
            .lock()
            .map_err(|_| Status::internal("chain lock poisoned"))
    }

    pub(super) fn go_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut s) = self.stop.lock() {
            if let Some(tx) = s.take() {
                let _ = tx.send(());
            }
        }
    }
}

#[tonic::async_trait]
impl TxService for Shared {
    async fn broadcast_tx(
        &self,
        request: Request<txs::BroadcastTxRequest>,
    ) -> Result<Response<txs::BroadcastTxResponse>, Status> {
        let (response, down, delay) = {
            let mut c = self.chain()?;
            c.broadcasts += 1;
            let response = c.execute(&request.into_inner().tx_bytes);
            let down = match c.down_after {
                Some(1) => {
                    c.down_after = None;
                    true
                }
                Some(n) => {
                    c.down_after = Some(n - 1);
                    false
                }
                None => false,
            };
            (response, down, c.delay)
        };
        if down {
            self.go_down();
            return Err(Status::unavailable("the node went down"));
        }
        tokio::time::sleep(delay).await;
        Ok(Response::new(txs::BroadcastTxResponse {
            tx_response: Some(response),
        }))
    }

    async fn get_tx(
        &self,
        request: Request<txs::GetTxRequest>,
    ) -> Result<Response<txs::GetTxResponse>, Status> {
        let c = self.chain()?;
        match c.txs.get(&request.into_inner().hash) {
            Some(r) => Ok(Response::new(txs::GetTxResponse {
                tx: None,
                tx_response: Some(r.clone()),
            })),
            None => Err(Status::not_found("tx not found")),
        }
    }

    async fn simulate(
        &self,
        _: Request<txs::SimulateRequest>,
    ) -> Result<Response<txs::SimulateResponse>, Status> {
        Err(Status::unimplemented("simulate"))
    }
    async fn get_txs_event(
        &self,
        _: Request<txs::GetTxsEventRequest>,
    ) -> Result<Response<txs::GetTxsEventResponse>, Status> {
        Err(Status::unimplemented("get_txs_event"))
    }
    async fn get_block_with_txs(
        &self,
        _: Request<txs::GetBlockWithTxsRequest>,
    ) -> Result<Response<txs::GetBlockWithTxsResponse>, Status> {
        Err(Status::unimplemented("get_block_with_txs"))
    }
    async fn tx_decode(
        &self,
        _: Request<txs::TxDecodeRequest>,
    ) -> Result<Response<txs::TxDecodeResponse>, Status> {
        Err(Status::unimplemented("tx_decode"))
    }
    async fn tx_encode(
        &self,
        _: Request<txs::TxEncodeRequest>,
    ) -> Result<Response<txs::TxEncodeResponse>, Status> {
        Err(Status::unimplemented("tx_encode"))
    }
    async fn tx_encode_amino(
        &self,
        _: Request<txs::TxEncodeAminoRequest>,
    ) -> Result<Response<txs::TxEncodeAminoResponse>, Status> {
        Err(Status::unimplemented("tx_encode_amino"))
    }
    async fn tx_decode_amino(
        &self,
        _: Request<txs::TxDecodeAminoRequest>,
    ) -> Result<Response<txs::TxDecodeAminoResponse>, Status> {
        Err(Status::unimplemented("tx_decode_amino"))
    }
}

/// `Unimplemented` for the auth and node methods the relay does not use,
/// written out as `async_trait` expands them (it cannot see into a macro).
macro_rules! unimplemented_methods {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _: Request<$req>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move { Err(Status::unimplemented(stringify!($name))) })
            }
        )*
    };
}

#[tonic::async_trait]
impl Query for Shared {
    async fn account(
        &self,
        request: Request<auth::QueryAccountRequest>,
    ) -> Result<Response<auth::QueryAccountResponse>, Status> {
        let address = request.into_inner().address;
        let c = self.chain()?;
        let a = c
            .accounts
            .get(&address)
            .ok_or_else(|| Status::not_found(format!("account {address} not found")))?;
        let account = BaseAccount {
            address,
            pub_key: None,
            account_number: a.number,
            sequence: a.sequence,
        };
        Ok(Response::new(auth::QueryAccountResponse {
            account: Some(tendermint_proto::google::protobuf::Any {
                type_url: BaseAccount::type_url(),
                value: account.encode_to_vec(),
            }),
        }))
    }

    unimplemented_methods! {
        accounts(auth::QueryAccountsRequest) -> auth::QueryAccountsResponse;
        account_address_by_id(auth::QueryAccountAddressByIdRequest) -> auth::QueryAccountAddressByIdResponse;
        params(auth::QueryParamsRequest) -> auth::QueryParamsResponse;
        module_accounts(auth::QueryModuleAccountsRequest) -> auth::QueryModuleAccountsResponse;
        module_account_by_name(auth::QueryModuleAccountByNameRequest) -> auth::QueryModuleAccountByNameResponse;
        bech32_prefix(auth::Bech32PrefixRequest) -> auth::Bech32PrefixResponse;
        address_bytes_to_string(auth::AddressBytesToStringRequest) -> auth::AddressBytesToStringResponse;
        address_string_to_bytes(auth::AddressStringToBytesRequest) -> auth::AddressStringToBytesResponse;
        account_info(auth::QueryAccountInfoRequest) -> auth::QueryAccountInfoResponse;
    }
}

#[tonic::async_trait]
impl NodeService for Shared {
    async fn get_latest_block(
        &self,
        _: Request<node::GetLatestBlockRequest>,
    ) -> Result<Response<node::GetLatestBlockResponse>, Status> {
        let mut c = self.chain()?;
        // Like a live chain, a new (empty) block at least every second.
        let now = c.now();
        if now > c.host.host_time.nanoseconds() + 1_000_000_000 {
            c.host.advance_to(now);
        }
        let height = c.host.host_height_v.revision_height();
        let ns = c.host.host_time.nanoseconds();
        let header = node::Header {
            chain_id: c.chain_id.clone(),
            height: height as i64,
            time: Some(tendermint_proto::google::protobuf::Timestamp {
                seconds: (ns / 1_000_000_000) as i64,
                nanos: (ns % 1_000_000_000) as i32,
            }),
            app_hash: crate::consumer::app_hash(height),
            next_validators_hash: NEXT_VALIDATORS_HASH.to_vec(),
            ..Default::default()
        };
        Ok(Response::new(node::GetLatestBlockResponse {
            block_id: None,
            block: None,
            sdk_block: Some(node::Block {
                header: Some(header),
                ..Default::default()
            }),
        }))
    }

    unimplemented_methods! {
        get_node_info(node::GetNodeInfoRequest) -> node::GetNodeInfoResponse;
        get_syncing(node::GetSyncingRequest) -> node::GetSyncingResponse;
        get_block_by_height(node::GetBlockByHeightRequest) -> node::GetBlockByHeightResponse;
        get_latest_validator_set(node::GetLatestValidatorSetRequest) -> node::GetLatestValidatorSetResponse;
        get_validator_set_by_height(node::GetValidatorSetByHeightRequest) -> node::GetValidatorSetByHeightResponse;
        abci_query(node::AbciQueryRequest) -> node::AbciQueryResponse;
    }
}
