//! A real regtest node on free loopback ports in a temporary data dir, with
//! a funded wallet, stopped on drop (feature `regtest`). The test suite runs
//! litecoind (Bitcoin Core 0.21's RPC and formats; see `../shared/NODE.md`);
//! `btcts dev` runs `bitcoind` when it is installed and litecoind otherwise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bitcoin::block::Header;
use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use serde_json::{json, Value};
use tempfile::TempDir;

mod ports;
pub use ports::{loopback_port, loopback_ports};

/// A regtest node program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Bitcoin Core's `bitcoind`.
    Bitcoind,
    /// Litecoin Core's `litecoind` (MWEB kept inactive).
    Litecoind,
}

impl NodeKind {
    /// The program name.
    pub fn binary(self) -> &'static str {
        match self {
            NodeKind::Bitcoind => "bitcoind",
            NodeKind::Litecoind => "litecoind",
        }
    }

    /// The anchor network of its regtest.
    pub fn network(self) -> aggregator::AnchorNetwork {
        match self {
            NodeKind::Bitcoind => aggregator::AnchorNetwork::Regtest,
            NodeKind::Litecoind => aggregator::AnchorNetwork::LitecoinRegtest,
        }
    }

    /// `bitcoind` if it is on `PATH`, else `litecoind`.
    pub fn detect() -> NodeKind {
        let on_path = |name: &str| {
            std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        };
        if on_path("bitcoind") {
            NodeKind::Bitcoind
        } else {
            NodeKind::Litecoind
        }
    }
}

/// A running regtest node. Dropping it stops the node and removes its data.
pub struct RegtestNode {
    kind: NodeKind,
    child: Option<Child>,
    dir: TempDir,
    rpc_port: u16,
    p2p_port: u16,
    client: Client,
    /// scriptPubKey (hex) of a wallet address that mined blocks pay to.
    mining_spk: String,
}

impl std::fmt::Debug for RegtestNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegtestNode")
            .field("rpc_port", &self.rpc_port)
            .finish()
    }
}

const RPC_USER: &str = "btcts";
const RPC_PASS: &str = "btcts-test";

/// Two distinct free loopback ports.
fn free_ports() -> Result<(u16, u16)> {
    let ports = loopback_ports(2)?;
    Ok((ports[0], ports[1]))
}

/// The node process exited before it answered RPC.
#[derive(Debug)]
struct EarlyExit(String);

impl std::fmt::Display for EarlyExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EarlyExit {}

impl RegtestNode {
    /// Starts litecoind (the test suite's node) with a funded wallet.
    pub fn start() -> Result<RegtestNode> {
        RegtestNode::start_kind(NodeKind::Litecoind)
    }

    /// Starts a node of `kind` with a wallet holding 50 spendable coins (101 blocks mined).
    ///
    /// The ports are picked free, but another process can take one before the
    /// node binds it; a node that exits during start-up is started again on
    /// fresh ports (three attempts), and the last failure names the node's own
    /// reason from its `debug.log`.
    pub fn start_kind(kind: NodeKind) -> Result<RegtestNode> {
        let mut attempt = 0;
        let mut node = loop {
            attempt += 1;
            let dir = tempfile::Builder::new().prefix("btcts-node-").tempdir()?;
            let (rpc_port, p2p_port) = free_ports()?;
            let client = Client::new(
                &format!("http://127.0.0.1:{rpc_port}"),
                Auth::UserPass(RPC_USER.into(), RPC_PASS.into()),
            )?;
            let mut node = RegtestNode {
                kind,
                child: None,
                dir,
                rpc_port,
                p2p_port,
                client,
                mining_spk: String::new(),
            };
            match node.spawn() {
                Ok(()) => break node,
                Err(e) if attempt < 3 && e.is::<EarlyExit>() => {
                    tracing::warn!("{e:#}; starting it again on other ports");
                }
                Err(e) => return Err(e),
            }
        };
        node.call("createwallet", &[json!("btcts")])?;
        let address = node.call("getnewaddress", &[])?;
        let info = node.call("getaddressinfo", &[address])?;
        node.mining_spk = info["scriptPubKey"]
            .as_str()
            .context("scriptPubKey")?
            .to_owned();
        node.mine(101)?;
        Ok(node)
    }

    /// The last lines of the node's `debug.log` (why it stopped), or a note
    /// that there is none.
    fn log_tail(&self) -> String {
        let path = self.dir.path().join("regtest").join("debug.log");
        match std::fs::read_to_string(&path) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(8)..].join("\n")
            }
            Err(e) => format!("(no {}: {e})", path.display()),
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(self.kind.binary());
        cmd.arg("-regtest")
            .arg("-daemon=0")
            .arg(format!("-datadir={}", self.dir.path().display()))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASS}"))
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!("-port={}", self.p2p_port))
            .args([
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-listen=0",
                "-connect=0",
            ])
            .args([
                "-dnsseed=0",
                "-upnp=0",
                "-discover=0",
                "-txindex=1",
                "-fallbackfee=0.0001",
            ])
            .args(["-keypool=10", "-printtoconsole=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.kind == NodeKind::Litecoind {
            cmd.args([
                "-vbparams=mweb:-2:-2",
                "-mempoolreplacement=1",
                "-rpcserialversion=1",
            ]);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not installed: run `scripts/setup-tests.sh` (or `apt-get install -y litecoind`)",
                self.kind.binary()
            ),
            Err(e) => return Err(e).context("starting the regtest node"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // An exit is looked for first: the RPC call on a port that another
            // process holds can hang until its own timeout.
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(EarlyExit(format!(
                    "{} exited during start-up ({status}); its debug.log ends:\n{}",
                    self.kind.binary(),
                    self.log_tail()
                ))
                .into());
            }
            match self.client.get_block_count() {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(e).context("the node did not answer RPC within 30 s"),
            }
        }
    }

    /// The RPC client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The RPC URL, `http://127.0.0.1:PORT`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// The RPC user name and password.
    pub fn credentials(&self) -> (String, String) {
        (RPC_USER.to_owned(), RPC_PASS.to_owned())
    }

    /// The scriptPubKey (hex) mined blocks pay to.
    pub fn mining_spk(&self) -> &str {
        &self.mining_spk
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw JSON-RPC call.
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value> {
        self.client
            .call(method, params)
            .with_context(|| format!("RPC {method}"))
    }

    /// Mines `n` blocks (with the mempool) to the wallet; returns their hashes.
    pub fn mine(&self, n: u64) -> Result<Vec<BlockHash>> {
        let v = self.call(
            "generatetodescriptor",
            &[json!(n), json!(format!("raw({})", self.mining_spk))],
        )?;
        Ok(serde_json::from_value(v)?)
    }

    /// Mines `n` blocks that leave the mempool out (`generateblock` with no
    /// transactions): blocks that pass an anchor by.
    pub fn mine_without_mempool(&self, n: u32) -> Result<Vec<BlockHash>> {
        self.mine_with_txs(n, &[])
    }

    /// Mines `n` blocks holding exactly `txs` (the first block) from the mempool.
    pub fn mine_with_txs(&self, n: u32, txs: &[Txid]) -> Result<Vec<BlockHash>> {
        self.generate_blocks(n, txs, &self.mining_spk)
    }

    fn generate_blocks(&self, n: u32, txs: &[Txid], spk: &str) -> Result<Vec<BlockHash>> {
        (0..n)
            .map(|i| {
                let txs = if i == 0 { txs } else { &[] };
                let v = self.call("generateblock", &[json!(format!("raw({spk})")), json!(txs)])?;
                Ok(serde_json::from_value(v["hash"].clone())?)
            })
            .collect()
    }

    /// Takes `block` and everything after it out of the best chain
    /// (`invalidateblock`; their transactions return to the mempool) and mines
    /// `n` mempool-free blocks on its parent.
    pub fn reorg_from(&self, block: &BlockHash, n: u32) -> Result<Vec<BlockHash>> {
        self.call("invalidateblock", &[json!(block)])?;
        // Pay the new branch to OP_TRUE: an empty block paying the wallet in
        // the same second as the one it replaces would be the same block.
        self.generate_blocks(n, &[], "51")
    }

    /// Replaces the `depth` most recent blocks with `depth + 1` mempool-free ones.
    pub fn reorg(&self, depth: u32) -> Result<Vec<BlockHash>> {
        let tip: u32 = serde_json::from_value(self.call("getblockcount", &[])?)?;
        let first: BlockHash =
            serde_json::from_value(self.call("getblockhash", &[json!(tip + 1 - depth)])?)?;
        self.reorg_from(&first, depth + 1)
    }

    /// The block with hash `hash`.
    pub fn block(&self, hash: &BlockHash) -> Result<Block> {
        let hex = self.call("getblock", &[json!(hash), json!(0)])?;
        Ok(deserialize_hex(hex.as_str().context("block hex")?)?)
    }

    /// The header of block `hash`.
    pub fn header(&self, hash: &BlockHash) -> Result<Header> {
        let hex = self.call("getblockheader", &[json!(hash), json!(false)])?;
        Ok(deserialize_hex(hex.as_str().context("header hex")?)?)
    }

    /// The height of block `hash`.
    pub fn height(&self, hash: &BlockHash) -> Result<u32> {
        let v = self.call("getblockheader", &[json!(hash), json!(true)])?;
        Ok(u32::try_from(v["height"].as_u64().context("height")?)?)
    }

    /// Funds, signs and broadcasts a transaction with the given outputs
    /// (`createrawtransaction` form) at `fee_rate` sat/vB; returns it.
    pub fn send_outputs(&self, outputs: Value, fee_rate: u64) -> Result<Transaction> {
        let raw = self.call("createrawtransaction", &[json!([]), outputs])?;
        let funded = self.call(
            "fundrawtransaction",
            &[raw, json!({ "fee_rate": fee_rate })],
        )?;
        let signed = self.call("signrawtransactionwithwallet", &[funded["hex"].clone()])?;
        if signed["complete"] != json!(true) {
            bail!("wallet could not sign: {signed}");
        }
        let hex = signed["hex"].as_str().context("signed hex")?;
        let txid: Txid = serde_json::from_value(self.call("sendrawtransaction", &[json!(hex)])?)?;
        let tx: Transaction = deserialize_hex(hex)?;
        if tx.compute_txid() != txid {
            bail!(
                "node reports txid {txid} for a transaction hashing to {}",
                tx.compute_txid()
            );
        }
        Ok(tx)
    }

    /// Starts the node again on the same data dir and ports, with its wallet.
    pub fn start_again(&mut self) -> Result<()> {
        self.spawn()?;
        // The wallet may already be loaded by -wallet settings; either is fine.
        let _ = self.call("loadwallet", &[json!("btcts")]);
        Ok(())
    }

    /// Stops the node and waits for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = self.client.stop();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl RegtestNode {
    /// Which program runs.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A node that cannot start (its RPC port taken) is an `EarlyExit` whose
    /// message carries the node's own reason, so a caller can retry on other
    /// ports and a failure report says why.
    #[test]
    fn a_node_that_cannot_bind_reports_why() -> Result<()> {
        let taken = TcpListener::bind("127.0.0.1:0")?;
        let rpc_port = taken.local_addr()?.port();
        let mut node = RegtestNode {
            kind: NodeKind::Litecoind,
            child: None,
            dir: tempfile::tempdir()?,
            rpc_port,
            p2p_port: free_ports()?.0,
            // The client asks a port nobody listens on (refused at once);
            // the node is told the taken one.
            client: Client::new(
                &format!("http://127.0.0.1:{}", free_ports()?.1),
                Auth::UserPass(RPC_USER.into(), RPC_PASS.into()),
            )?,
            mining_spk: String::new(),
        };
        let err = node.spawn().expect_err("the RPC port is taken");
        assert!(err.is::<EarlyExit>(), "{err:#}");
        let text = format!("{err:#}");
        assert!(text.contains("debug.log ends"), "{text}");
        assert!(text.to_lowercase().contains("bind"), "{text}");
        Ok(())
    }
}
