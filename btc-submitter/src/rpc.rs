//! [`BitcoinNode`] over Bitcoin Core's JSON-RPC (also litecoind 0.21).
//!
//! Only RPCs both support are used, through raw calls where typed responses
//! would carry addresses or fork-specific fields (`../shared/NODE.md`).
//! Replacements are built by hand (same inputs, `add_inputs: false`), never
//! with `bumpfee`, which crashes litecoind on OP_RETURN transactions.
//! Waiting for a block (`waitforblockheight`, a long poll) goes over a
//! connection of its own, so that it never holds up the other calls.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hex::DisplayHex;
use bitcoin::{Amount, Block, BlockHash, OutPoint, Transaction, Txid};
use bitcoincore_rpc::jsonrpc;
use bitcoincore_rpc::{Auth, Client, RpcApi};
use serde_json::{json, Value};

use crate::node::{BitcoinNode, BlockStatus, ChainInfo, Funded, NodeError, TxStatus};

/// How to reach the node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// `http://host:port`, optionally with `/wallet/<name>`.
    pub url: String,
    /// Credentials.
    pub auth: RpcAuth,
}

/// Node RPC credentials. Never logged.
#[derive(Clone)]
pub enum RpcAuth {
    /// `rpcuser` / `rpcpassword`.
    UserPass(String, String),
    /// The node's `.cookie` file.
    CookieFile(std::path::PathBuf),
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcAuth::UserPass(user, _) => write!(f, "UserPass({user}, <redacted>)"),
            RpcAuth::CookieFile(p) => write!(f, "CookieFile({})", p.display()),
        }
    }
}

/// A node reached over JSON-RPC.
#[derive(Debug)]
pub struct CoreRpcNode {
    client: Client,
    /// For `waitforblockheight` only: an RPC client is one connection behind
    /// a lock, and a long poll on `client` would stall every other call.
    waiter: Client,
}

/// The longest `waitforblockheight` asked of the node: callers wanting more
/// wait again. Bounded so that a lost connection is noticed.
pub const MAX_BLOCK_WAIT: Duration = Duration::from_secs(30);

/// How much longer than the wait the waiting connection allows for the
/// answer itself (the default client times out after 15 s, shorter than a
/// long poll).
const WAIT_MARGIN: Duration = Duration::from_secs(10);

/// RPC error codes that mean "try again later".
const RPC_IN_WARMUP: i32 = -28;
/// `sendrawtransaction`: already in the chain.
const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
/// `getrawtransaction`/`gettransaction`: no such transaction.
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;

impl CoreRpcNode {
    /// A client for `config` (no request is made yet).
    pub fn new(config: &RpcConfig) -> Result<CoreRpcNode, NodeError> {
        let auth = match &config.auth {
            RpcAuth::UserPass(u, p) => Auth::UserPass(u.clone(), p.clone()),
            RpcAuth::CookieFile(p) => Auth::CookieFile(p.clone()),
        };
        let (user, pass) = auth.get_user_pass().map_err(classify)?;
        let client = Client::from_jsonrpc(jsonrpc::Client::with_transport(http_transport(
            &config.url,
            &user,
            &pass,
            None,
        )?));
        let waiter = Client::from_jsonrpc(jsonrpc::Client::with_transport(http_transport(
            &config.url,
            &user,
            &pass,
            Some(MAX_BLOCK_WAIT + WAIT_MARGIN),
        )?));
        Ok(CoreRpcNode { client, waiter })
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, NodeError> {
        self.client.call(method, params).map_err(classify)
    }

    /// Like `call`, but `Ok(None)` when the node answers with error `code`.
    fn call_unless<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
        code: i32,
    ) -> Result<Option<T>, NodeError> {
        match self.client.call(method, params) {
            Ok(v) => Ok(Some(v)),
            Err(e) if rpc_code(&e) == Some(code) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }
}

/// A JSON-RPC-over-HTTP transport for `url`; `timeout` replaces the
/// client's default (15 s).
fn http_transport(
    url: &str,
    user: &Option<String>,
    pass: &Option<String>,
    timeout: Option<Duration>,
) -> Result<jsonrpc::simple_http::SimpleHttpTransport, NodeError> {
    let mut builder = jsonrpc::simple_http::Builder::new()
        .url(url)
        .map_err(|e| NodeError::Permanent(format!("node url: {e}")))?;
    if let Some(user) = user {
        builder = builder.auth(user.as_str(), pass.as_deref());
    }
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    Ok(builder.build())
}

/// Sorts an RPC failure into transient and permanent.
fn classify(e: bitcoincore_rpc::Error) -> NodeError {
    use bitcoincore_rpc::Error as E;
    match &e {
        E::JsonRpc(jsonrpc::Error::Transport(_)) | E::Io(_) => NodeError::Transient(e.to_string()),
        E::JsonRpc(jsonrpc::Error::Rpc(r)) if r.code == RPC_IN_WARMUP => {
            NodeError::Transient(e.to_string())
        }
        _ => NodeError::Permanent(e.to_string()),
    }
}

fn rpc_code(e: &bitcoincore_rpc::Error) -> Option<i32> {
    match e {
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(r)) => Some(r.code),
        _ => None,
    }
}

fn bad(what: &str, v: &Value) -> NodeError {
    NodeError::Permanent(format!(
        "unexpected {what} response: {}",
        truncate(&v.to_string())
    ))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

fn hex_field<T: bitcoin::consensus::Decodable>(v: &Value, what: &str) -> Result<T, NodeError> {
    let s = v.as_str().ok_or_else(|| bad(what, v))?;
    deserialize_hex(s).map_err(|e| NodeError::Permanent(format!("{what}: {e}")))
}

impl BitcoinNode for CoreRpcNode {
    fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        let info: Value = self.call("getblockchaininfo", &[])?;
        let genesis: BlockHash = self.call("getblockhash", &[json!(0)])?;
        let chain = info["chain"]
            .as_str()
            .ok_or_else(|| bad("getblockchaininfo", &info))?
            .to_owned();
        let tip: BlockHash = serde_json::from_value(info["bestblockhash"].clone())
            .map_err(|_| bad("getblockchaininfo", &info))?;
        let tip_height = info["blocks"].as_u64().and_then(|h| u32::try_from(h).ok());
        let tip_height = tip_height.ok_or_else(|| bad("getblockchaininfo", &info))?;
        Ok(ChainInfo {
            chain,
            genesis,
            tip,
            tip_height,
        })
    }

    fn best_block_hash(&self) -> Result<BlockHash, NodeError> {
        self.call("getbestblockhash", &[])
    }

    fn wait_for_block_above(
        &self,
        height: u32,
        timeout: Duration,
    ) -> Result<(u32, BlockHash), NodeError> {
        // At least 1 ms: 0 means "no timeout" to the node.
        let ms = u64::try_from(timeout.min(MAX_BLOCK_WAIT).as_millis()).map_or(1, |ms| ms.max(1));
        let v: Value = self
            .waiter
            .call(
                "waitforblockheight",
                &[json!(u64::from(height) + 1), json!(ms)],
            )
            .map_err(classify)?;
        let at = v["height"].as_u64().and_then(|h| u32::try_from(h).ok());
        let hash = serde_json::from_value(v["hash"].clone()).ok();
        match (at, hash) {
            (Some(at), Some(hash)) => Ok((at, hash)),
            _ => Err(bad("waitforblockheight", &v)),
        }
    }

    fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, NodeError> {
        let params = [json!(hash), json!(true)];
        let Some(v) =
            self.call_unless::<Value>("getblockheader", &params, RPC_INVALID_ADDRESS_OR_KEY)?
        else {
            return Ok(None);
        };
        let height = v["height"].as_u64().and_then(|h| u32::try_from(h).ok());
        match (height, v["confirmations"].as_i64()) {
            (Some(height), Some(confirmations)) => Ok(Some(BlockStatus {
                height,
                confirmations,
            })),
            _ => Err(bad("getblockheader", &v)),
        }
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, NodeError> {
        let v: Value = self.call("getblock", &[json!(hash), json!(0)])?;
        hex_field(&v, "getblock")
    }

    fn header(&self, hash: &BlockHash) -> Result<Header, NodeError> {
        let v: Value = self.call("getblockheader", &[json!(hash), json!(false)])?;
        hex_field(&v, "getblockheader")
    }

    fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        // -8: block height out of range.
        self.call_unless("getblockhash", &[json!(height)], -8)
    }

    fn estimate_fee_rate(&self, blocks: u16) -> Result<Option<u64>, NodeError> {
        let v: Value = self.call("estimatesmartfee", &[json!(blocks)])?;
        // feerate is in coins per kvB; absent with "Insufficient data".
        Ok(v["feerate"]
            .as_f64()
            .and_then(|btc_per_kvb| Amount::from_btc(btc_per_kvb).ok())
            .map(|per_kvb| per_kvb.to_sat().div_ceil(1000)))
    }

    fn wallet_balance_sat(&self) -> Result<u64, NodeError> {
        // `getbalances` (Bitcoin Core ≥ 0.19, litecoind 0.21): trusted is
        // confirmed plus our own unconfirmed change.
        let v: Value = self.call("getbalances", &[])?;
        let trusted = v["mine"]["trusted"]
            .as_f64()
            .ok_or_else(|| NodeError::Permanent(format!("getbalances answered {v}")))?;
        Amount::from_btc(trusted)
            .map(Amount::to_sat)
            .map_err(|e| NodeError::Permanent(format!("getbalances: {e}")))
    }

    fn fund_and_sign(
        &self,
        script: &bitcoin::Script,
        fee_rate: u64,
        inputs: Option<&[OutPoint]>,
    ) -> Result<Funded, NodeError> {
        let bytes = script.as_bytes();
        // OP_RETURN <push>: the data after the opcode and the push length.
        let data = bytes
            .get(2..)
            .ok_or_else(|| NodeError::Permanent("empty script".into()))?;
        let ins: Vec<Value> = inputs
            .unwrap_or_default()
            .iter()
            .map(|o| json!({ "txid": o.txid, "vout": o.vout, "sequence": 0xffff_fffd_u32 }))
            .collect();
        let raw: Value = self.call(
            "createrawtransaction",
            &[json!(ins), json!([{ "data": data.to_lower_hex_string() }])],
        )?;
        let mut options = json!({ "fee_rate": fee_rate, "replaceable": true });
        if inputs.is_some() {
            options["add_inputs"] = json!(false);
        }
        let funded: Value = self.call("fundrawtransaction", &[raw, options])?;
        let fee = funded["fee"]
            .as_f64()
            .and_then(|f| Amount::from_btc(f).ok());
        let fee_sat = fee
            .ok_or_else(|| bad("fundrawtransaction", &funded))?
            .to_sat();
        let signed: Value = self.call("signrawtransactionwithwallet", &[funded["hex"].clone()])?;
        if signed["complete"] != json!(true) {
            return Err(NodeError::Permanent(format!(
                "wallet could not sign: {}",
                truncate(&signed.to_string())
            )));
        }
        let tx: Transaction = hex_field(&signed["hex"], "signrawtransactionwithwallet")?;
        Ok(Funded { tx, fee_sat })
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let txid = tx.compute_txid();
        match self
            .client
            .call::<Txid>("sendrawtransaction", &[json!(serialize_hex(tx))])
        {
            Ok(t) => Ok(t),
            Err(e) if rpc_code(&e) == Some(RPC_VERIFY_ALREADY_IN_CHAIN) => Ok(txid),
            Err(e)
                if e.to_string().contains("txn-already-in-mempool")
                    || e.to_string().contains("txn-already-known") =>
            {
                Ok(txid)
            }
            Err(e) => Err(classify(e)),
        }
    }

    fn tx_status(&self, txid: &Txid) -> Result<TxStatus, NodeError> {
        let Some(v) = self.call_unless::<Value>(
            "gettransaction",
            &[json!(txid)],
            RPC_INVALID_ADDRESS_OR_KEY,
        )?
        else {
            return Ok(TxStatus::Unknown);
        };
        let confirmations = v["confirmations"]
            .as_i64()
            .ok_or_else(|| bad("gettransaction", &v))?;
        if confirmations > 0 {
            let hash = serde_json::from_value(v["blockhash"].clone())
                .map_err(|_| bad("gettransaction", &v))?;
            return Ok(TxStatus::InBlock(hash));
        }
        if confirmations < 0 {
            return Ok(TxStatus::Conflicted);
        }
        // Unconfirmed: in our mempool, or dropped (evicted, or never relayed).
        let entry = self.call_unless::<Value>(
            "getmempoolentry",
            &[json!(txid)],
            RPC_INVALID_ADDRESS_OR_KEY,
        )?;
        Ok(if entry.is_some() {
            TxStatus::InMempool
        } else {
            TxStatus::Unknown
        })
    }
}
