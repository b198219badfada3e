//! `--node`: the verifier's own node, the strongest evidence a verifier can
//! have that a block is in the best chain. Credentials come from a cookie
//! file or a bitcoin.conf-style file, never from the command line (a
//! password in the URL still works but is visible to every local user).

use std::path::Path;

use aggregator::AnchorNetwork;
use bitcoin::{BlockHash, Txid};
use btc_submitter::{BitcoinNode, CoreRpcNode, RpcAuth, RpcConfig};

use super::{Failure, VerifyArgs};

/// The verifier's node and the network it is on.
pub struct Node {
    pub rpc: CoreRpcNode,
    pub network: AnchorNetwork,
}

/// The anchor block as the node sees it.
pub struct Seen {
    /// Confirmations by the node's best chain.
    pub confirmations: u32,
    /// The node's best height.
    pub tip_height: u32,
}

impl Node {
    /// Connects with the credentials of `args` and finds out its network
    /// from its genesis block.
    pub fn connect(
        args: &VerifyArgs,
        url: &str,
        err: &mut impl std::io::Write,
    ) -> Result<Node, Failure> {
        let bad = |why: String| Failure::NoHeaderSource(format!("--node: {why}"));
        let mut parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let in_url = (!parsed.username().is_empty()).then(|| {
            (
                parsed.username().to_owned(),
                parsed.password().unwrap_or_default().to_owned(),
            )
        });
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let auth = match (&args.node_cookie, &args.node_conf, in_url) {
            (Some(cookie), _, _) => RpcAuth::CookieFile(cookie.clone()),
            (None, Some(conf), _) => conf_credentials(conf).map_err(bad)?,
            (None, None, Some((user, password))) => {
                let _ = writeln!(
                    err,
                    "btcts verify: warning: the node password in --node is visible to every local user; prefer --node-cookie or --node-conf"
                );
                RpcAuth::UserPass(user, password)
            }
            (None, None, None) => {
                return Err(bad(
                    "no credentials: give --node-cookie FILE (the node's .cookie) or --node-conf FILE (rpcuser/rpcpassword)".into(),
                ))
            }
        };
        let rpc = CoreRpcNode::new(&RpcConfig {
            url: parsed.to_string(),
            auth,
        })
        .map_err(|e| bad(e.to_string()))?;
        let info = rpc
            .chain_info()
            .map_err(|e| bad(format!("cannot ask the node: {e}")))?;
        let network = AnchorNetwork::ALL
            .into_iter()
            .find(|n| n.genesis_hash() == info.genesis && n.node_chain_name() == info.chain)
            .ok_or_else(|| {
                bad(format!(
                    "the node's chain ({}, genesis {}) is not one btcts knows",
                    info.chain, info.genesis
                ))
            })?;
        Ok(Node { rpc, network })
    }

    /// Whether `hash` is the node's best-chain block at `height` and, when
    /// `tx` is given, holds that transaction at that index: the node's
    /// block, not the proof's branch, then shows the inclusion, so not even
    /// a 64-byte transaction of the real block can pose as the anchor.
    pub fn check(
        &self,
        network: AnchorNetwork,
        height: u32,
        hash: &BlockHash,
        tx: Option<(Txid, u32)>,
    ) -> Result<Seen, Failure> {
        if network != self.network {
            return Err(Failure::Node(format!(
                "the proof is anchored on {network}, the node is on {}",
                self.network
            )));
        }
        let unavailable = |e: btc_submitter::NodeError| {
            Failure::NoHeaderSource(format!("--node: cannot ask the node: {e}"))
        };
        let tip_height = self.rpc.chain_info().map_err(unavailable)?.tip_height;
        match self.rpc.block_hash_at(height).map_err(unavailable)? {
            Some(at) if at == *hash => {
                if let Some((txid, index)) = tx {
                    let block = self.rpc.block(hash).map_err(unavailable)?;
                    let found = block.txdata.get(index as usize).map(|t| t.compute_txid());
                    if found != Some(txid) {
                        return Err(Failure::Node(format!(
                            "the node's block {hash} does not hold transaction {txid} at index {index}"
                        )));
                    }
                }
                Ok(Seen {
                    confirmations: tip_height.saturating_sub(height).saturating_add(1),
                    tip_height,
                })
            }
            Some(at) => Err(Failure::Node(format!(
                "block {hash} is not in the node's best chain: the node has {at} at height {height}"
            ))),
            None => Err(Failure::Node(format!(
                "block {hash} is not in the node's best chain: the node's chain ends at height {tip_height}, below {height}"
            ))),
        }
    }
}

/// `rpcuser` and `rpcpassword` from a bitcoin.conf-style file (any
/// section; the last value wins), or its `rpccookiefile`.
fn conf_credentials(path: &Path) -> Result<RpcAuth, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut user, mut password, mut cookie) = (None, None, None);
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "rpcuser" => user = Some(value),
            "rpcpassword" => password = Some(value),
            "rpccookiefile" => cookie = Some(value),
            _ => {}
        }
    }
    match (user, password, cookie) {
        (Some(u), Some(p), _) => Ok(RpcAuth::UserPass(u, p)),
        (_, _, Some(c)) => Ok(RpcAuth::CookieFile(c.into())),
        _ => Err(format!(
            "{}: no rpcuser/rpcpassword or rpccookiefile",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_files_give_credentials_or_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("bitcoin.conf");
        std::fs::write(
            &conf,
            "# node\nserver=1\n[regtest]\nrpcuser = alice\nrpcpassword=s3cret=x\n",
        )
        .expect("write");
        match conf_credentials(&conf) {
            Ok(RpcAuth::UserPass(u, p)) => {
                assert_eq!((u.as_str(), p.as_str()), ("alice", "s3cret=x"))
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&conf, "rpccookiefile=/var/lib/bitcoind/.cookie\n").expect("write");
        assert!(matches!(
            conf_credentials(&conf),
            Ok(RpcAuth::CookieFile(_))
        ));
        std::fs::write(&conf, "server=1\n").expect("write");
        let e = conf_credentials(&conf).expect_err("no credentials");
        assert!(e.contains("no rpcuser"), "{e}");
        assert!(conf_credentials(&dir.path().join("missing.conf")).is_err());
    }
}
